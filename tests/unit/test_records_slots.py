"""Objects built by slot_builder (C and pure Python) are the ones their constructors make."""

from __future__ import annotations

import pytest

from consumer.records import _speedups, slots
from consumer.records.image import Image, new_image
from consumer.records.position import RecordPosition, new_position

POSITION_SLOTS = ("stream", "shard_id", "sequence_number", "sub_sequence_number", "arrival_ms")


@pytest.mark.parametrize("native", [True, False], ids=["c", "python"])
def test_a_built_position_equals_the_constructed_one(
    native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not native:
        monkeypatch.setattr(slots, "_speedups", None)
    build = slots.slot_builder(RecordPosition, POSITION_SLOTS)
    built = build("orders", "shardId-1", "4965", 2, 1720046486486)
    expected = RecordPosition("orders", "shardId-1", "4965", 2, 1720046486486)
    assert type(built) is RecordPosition
    assert built == expected and hash(built) == hash(expected) and str(built) == str(expected)
    with pytest.raises(AttributeError):
        built.stream = "other"  # type: ignore[misc]  # deliberately: still frozen


def test_the_decoders_builders_set_every_slot() -> None:
    position = new_position("orders", "shardId-1", "4965", 0, None)
    assert position == RecordPosition("orders", "shardId-1", "4965")
    wire = {"pk": {"S": "k"}}
    image = new_image(wire, position, "Keys", b"{}", None)
    assert image == Image(wire, position, "Keys", b"{}")
    assert image.python == {"pk": "k"} and image.label == "Keys"
    lazy = new_image(None, position, "NewImage", b"{}", lambda: wire)
    assert lazy.wire is wire


def test_build_refuses_a_wrong_count_and_layout_a_name_that_is_no_slot() -> None:
    layout = _speedups.layout(RecordPosition, POSITION_SLOTS)
    with pytest.raises(TypeError, match="at most one value per slot"):
        _speedups.build(layout, *range(6))
    partial = _speedups.build(layout, "orders")
    assert (partial.stream, partial.shard_id, partial.arrival_ms) == ("orders", None, None)
    with pytest.raises(ValueError, match="PyCapsule"):
        _speedups.build(object(), "orders")  # not a layout
    with pytest.raises(AttributeError):
        _speedups.layout(RecordPosition, ("nope",))
    with pytest.raises(TypeError, match="slot of cls"):
        _speedups.layout(RecordPosition, ("sequence_key",))  # a property, not a slot
