"""The probe item format: keys for any key schema, and probes recognised in change events."""

from __future__ import annotations

import pytest

from consumer.compare.latency.probes import (
    PROBE_SEQ,
    PROBE_TAG,
    PROBE_WRITTEN_US,
    KeyAttribute,
    Phase,
    ProbeKeys,
    ProbeStamp,
    ProbeTag,
    probe_attributes,
    read_probe,
)
from tests.change_factory import change

TAG = ProbeTag("run1", "efo", Phase.MEASURE)


def test_a_tag_names_run_mode_and_phase() -> None:
    assert str(TAG) == "run1/efo/measure"
    assert str(ProbeTag("run1", "streams", Phase.WARMUP)) == "run1/streams/warmup"


def test_probe_attributes_carry_tag_number_and_write_time() -> None:
    assert probe_attributes(TAG, 3, 1_700_000_000_123_456) == {
        PROBE_TAG: {"S": "run1/efo/measure"},
        PROBE_SEQ: {"N": "3"},
        PROBE_WRITTEN_US: {"N": "1700000000123456"},
    }


def test_a_probe_is_read_back_from_its_change() -> None:
    event = change("INSERT", "latency-probe#x", 1, new=probe_attributes(TAG, 7, 42))
    assert read_probe(event) == ProbeStamp(tag="run1/efo/measure", seq=7, written_us=42)


def test_a_modify_of_a_probe_is_read_from_its_new_image() -> None:
    old = probe_attributes(TAG, 1, 10)
    new = probe_attributes(TAG, 1, 20)
    event = change("MODIFY", "k", 1, new=new, old=old)
    assert read_probe(event) == ProbeStamp(tag="run1/efo/measure", seq=1, written_us=20)


@pytest.mark.parametrize(
    ("event_name", "new", "old"),
    [
        ("REMOVE", None, probe_attributes(TAG, 1, 10)),  # a deleted probe is no apply
        ("INSERT", {"status": {"S": "NEW"}}, None),  # an ordinary item
        ("INSERT", {PROBE_TAG: {"S": "t"}, PROBE_SEQ: {"N": "1"}}, None),  # no write time
        ("INSERT", {**probe_attributes(TAG, 1, 10), PROBE_SEQ: {"S": "1"}}, None),  # wrong type
        ("INSERT", {**probe_attributes(TAG, 1, 10), PROBE_SEQ: {"N": "1.5"}}, None),
    ],
)
def test_other_changes_are_not_probes(
    event_name: str, new: dict[str, object] | None, old: dict[str, object] | None
) -> None:
    assert read_probe(change(event_name, "k", 1, new=new, old=old)) is None


def test_string_keys_are_readable_labels() -> None:
    keys = ProbeKeys(KeyAttribute("pk", "S"))
    assert keys.key(TAG, 4) == {"pk": {"S": "latency-probe#run1/efo/measure#4"}}


def test_keys_follow_the_table_schema_with_a_sort_key() -> None:
    description = {
        "AttributeDefinitions": [
            {"AttributeName": "id", "AttributeType": "N"},
            {"AttributeName": "at", "AttributeType": "B"},
        ],
        "KeySchema": [
            {"AttributeName": "at", "KeyType": "RANGE"},
            {"AttributeName": "id", "KeyType": "HASH"},
        ],
    }
    keys = ProbeKeys.from_table(description)
    assert keys == ProbeKeys(KeyAttribute("id", "N"), KeyAttribute("at", "B"))
    key = keys.key(TAG, 1)
    assert key["at"] == {"B": b"latency-probe#run1/efo/measure#1"}
    number = key["id"]["N"]
    assert number.startswith("-") and int(number) < 0
    assert keys.key(TAG, 1) == key  # deterministic
    assert keys.key(TAG, 2)["id"] != key["id"]


def test_a_description_without_a_hash_key_is_refused() -> None:
    with pytest.raises(ValueError, match="HASH"):
        ProbeKeys.from_table({"AttributeDefinitions": [], "KeySchema": []})
