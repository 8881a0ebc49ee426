"""KPL aggregation: de-aggregation with sub-sequence numbers and every kind of corruption."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.records import DecodeError, RecordPosition, aggregate, deaggregate, is_aggregated
from consumer.records.kpl import MAGIC

POSITION = RecordPosition("orders", "shardId-000000000002", "4965406322456437133801254617", 0, 1)


def framed(body: bytes) -> bytes:
    """An aggregate around a hand-written protobuf body, with a correct digest."""
    return MAGIC + body + hashlib.md5(body).digest()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=64)), max_size=8))
def test_aggregate_round_trip(records: list[tuple[str, bytes]]) -> None:
    payload = aggregate(records)
    assert is_aggregated(payload)
    users = deaggregate(payload, POSITION)
    assert [(u.partition_key, u.data) for u in users] == records
    assert [u.position.sub_sequence_number for u in users] == list(range(len(records)))
    assert all(u.position.sequence_number == POSITION.sequence_number for u in users)
    assert all(u.position.arrival_ms == POSITION.arrival_ms for u in users)


def test_a_record_that_is_not_aggregated_passes_through() -> None:
    [user] = deaggregate(b'{"eventID":"1"}', POSITION.with_sub_sequence(7))
    assert user.data == b'{"eventID":"1"}'
    assert user.position.sub_sequence_number == 0
    assert not is_aggregated(b"")


def test_explicit_hash_keys_and_unknown_fields() -> None:
    # partition_key_table=["pk"], explicit_hash_key_table=["123"], an unknown varint field 9,
    # one record {pk index 0, ehk index 0, data "hi", a tag, an unknown fixed32 field 7}.
    record = b"\x08\x00\x10\x00\x1a\x02hi\x22\x05\x0a\x01k\x12\x00\x3d\x01\x02\x03\x04"
    body = b"\x0a\x02pk\x12\x03123\x48\x05\x1a" + bytes([len(record)]) + record
    [user] = deaggregate(framed(body), POSITION)
    assert (user.partition_key, user.explicit_hash_key, user.data) == ("pk", "123", b"hi")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (MAGIC + b"\x00" * 8, "too short"),
        (MAGIC + b"\x0a\x01x" + b"\x00" * 16, "MD5"),
        (framed(b"\x0a\x05ab"), "runs past the end"),
        (framed(b"\x0a"), "truncated varint"),
        (framed(b"\x08" + b"\xff" * 10 + b"\x01"), "longer than 64 bits"),
        (framed(b"\x0b"), "unsupported wire type"),
        (framed(b"\x00"), "field number 0"),
        (framed(b"\x0a\x01k\x1a\x02\x08\x00"), "lacks its partition key index or data"),
        (framed(b"\x0a\x01k\x1a\x05\x08\x03\x1a\x01x"), "partition key index 3 out of range"),
        (framed(b"\x0a\x01k\x1a\x07\x08\x00\x10\x01\x1a\x01x"), "hash key index 1"),
        (framed(b"\x0a\x01\xff"), "not UTF-8"),
        (framed(b"\x08\x01\x1a\x01x"), "expected a length-delimited field"),
        (framed(b"\x0a\x01k\x1a\x03\x1a\x01x"), "partition key index or data"),
        (framed(b"\x0a\x01k\x1a\x04\x08\x00\x18\x01"), "length-delimited"),
        (framed(b"\x0a\x01k\x1a\x05\x0a\x01x\x1a\x00"), "expected a varint"),
        (framed(b"\x09\x01\x02"), "fixed-size field runs past the end"),
    ],
)
def test_corrupt_aggregates_raise_decode_error(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as raised:
        deaggregate(payload, POSITION)
    assert reason in raised.value.reason
    assert raised.value.position == POSITION
    assert raised.value.raw == payload


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60))
def test_any_body_gives_records_or_a_decode_error(body: bytes) -> None:
    try:
        users = deaggregate(framed(body), POSITION)
    except DecodeError:
        return
    assert [u.position.sub_sequence_number for u in users] == list(range(len(users)))
