"""Hypothesis strategies shared by the test_search_* modules: change histories per item key
and their delivery with duplicates and disorder, as a Kinesis destination may deliver them.

`expected_items(history)` is the oracle: the state of the table after applying every change in
order, as {document id: item}. The tests at the bottom check the generators themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.records import ChangeEvent, EventName, to_json_bytes
from tests.change_factory import change

WORDS = ("apple", "banana", "cherry", "damson", "elder", "fig")


@dataclass(frozen=True)
class Delivery:
    """Every change of a history (in order), and the batches they arrive in."""

    changes: list[ChangeEvent]
    batches: list[list[ChangeEvent]]


def _change(kind: str, key: str, version: int, value: int, word: str) -> ChangeEvent:
    image = {"value": {"N": str(value)}, "name": {"S": f"{word} {key}"}}
    if kind == "REMOVE":
        return change(kind, key, version, old=image)
    if kind == "MODIFY":
        return change(kind, key, version, new=image, old={"value": {"N": "0"}})
    return change(kind, key, version, new=image)


# One key's history: distinct change times, and per change (kind, value, word). Values are
# integers, exact in every JSON reader. Strategies are built once: drawing is the hot path.
_TIMES = st.sets(st.integers(1_000_000, 1_000_000_000), min_size=1, max_size=6)
_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["INSERT", "MODIFY", "REMOVE"]),
        st.integers(-(10**30), 10**30),
        st.sampled_from(WORDS),
    ),
    min_size=6,
    max_size=6,
)


@st.composite
def key_histories(draw: st.DrawFn, key: str) -> list[ChangeEvent]:
    """One key's changes, strictly increasing versions (change times in microseconds)."""
    times = sorted(draw(_TIMES))
    steps = draw(_STEPS)
    return [
        _change(kind, key, version, value, word)
        for version, (kind, value, word) in zip(times, steps, strict=False)
    ]


@st.composite
def deliveries(draw: st.DrawFn, max_keys: int = 4) -> Delivery:
    """Histories of 1..max_keys keys, delivered shuffled, with duplicates, in batches of 1-6."""
    keys = [f"k{i}" for i in range(draw(st.integers(1, max_keys)))]
    changes = [event for key in keys for event in draw(key_histories(key))]
    duplicates = draw(st.lists(st.sampled_from(changes), max_size=len(changes)))
    order = draw(st.permutations(changes + duplicates))
    sizes = draw(st.lists(st.integers(1, 6), min_size=len(order), max_size=len(order)))
    batches: list[list[ChangeEvent]] = []
    start = 0
    for size in sizes:
        if start >= len(order):
            break
        batches.append(order[start : start + size])
        start += size
    return Delivery(changes, batches)


def expected_items(changes: list[ChangeEvent]) -> dict[str, dict[str, Any]]:
    """The live items after applying `changes` in version order: {pk: item}."""
    newest: dict[str, ChangeEvent] = {}
    for event in changes:
        key = event.keys.python["pk"]
        if key not in newest or event.version > newest[key].version:
            newest[key] = event
    items: dict[str, dict[str, Any]] = {}
    for key, event in newest.items():
        if event.event_name is not EventName.REMOVE:
            assert event.new_image is not None
            # stdlib json: integers of any size stay exact (orjson gives floats past 64 bits).
            items[key] = json.loads(to_json_bytes(event.new_image.json))
    return items


@settings(max_examples=25)
@given(deliveries())
def test_deliveries_hold_every_change_at_least_once(delivery: Delivery) -> None:
    delivered = [event for batch in delivery.batches for event in batch]
    assert {id(event) for event in delivered} == {id(event) for event in delivery.changes}
    assert all(1 <= len(batch) <= 6 for batch in delivery.batches)


@settings(max_examples=25)
@given(deliveries())
def test_versions_strictly_increase_per_key(delivery: Delivery) -> None:
    versions: dict[str, list[int]] = {}
    for event in delivery.changes:
        versions.setdefault(event.keys.python["pk"], []).append(event.version)
    assert all(v == sorted(set(v)) for v in versions.values())


def test_the_oracle_keeps_the_newest_change_and_drops_removed_items() -> None:
    changes = [
        _change("INSERT", "a", 1, 1, "fig"),
        _change("MODIFY", "a", 2, 2, "fig"),
        _change("INSERT", "b", 1, 5, "fig"),
        _change("REMOVE", "b", 3, 0, "fig"),
    ]
    assert expected_items(changes) == {"a": {"pk": "a", "value": 2, "name": "fig a"}}
