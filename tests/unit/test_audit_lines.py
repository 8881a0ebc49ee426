"""The audit line: metadata around the change record, embedded verbatim; bad payloads refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.pipeline.audit.lines import LINE_FIELDS, LineError, audit_line, iso_utc_us
from consumer.records import ChangeEvent, RecordPosition, decode_destination_record, iso_utc
from consumer.records.timestamps import MAX_US
from tests.unit.test_audit_support import SHARD, STREAM, T0_MS, change_event, sequence
from tests.unit.test_records_strategies import ITEMS, KEYS, destination_record, serialize

EVENTS = Path(__file__).parent.parent / "events"
DOC_RECORDS: list[dict[str, Any]] = json.loads(
    (EVENTS / "kinesis_destination_records.json").read_text()
)
ALL_TYPES: dict[str, Any] = json.loads((EVENTS / "kinesis_destination_all_types.json").read_text())
POSITION = RecordPosition(STREAM, SHARD, sequence(7), 2, T0_MS)


def decoded(record: dict[str, Any], position: RecordPosition = POSITION) -> ChangeEvent:
    return decode_destination_record(orjson.dumps(record), position)


def parse(line: bytes) -> dict[str, Any]:
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1, "one change, one line"
    parsed: dict[str, Any] = json.loads(line)
    return parsed


@pytest.mark.parametrize("record", [*DOC_RECORDS, ALL_TYPES], ids=lambda r: r["eventName"])
def test_the_change_is_the_raw_record_verbatim(record: dict[str, Any]) -> None:
    event = decoded(record)
    line = audit_line(event)
    assert json.loads(line)["change"] == json.loads(event.raw) == record
    # Verbatim: the payload's bytes are in the line, not a re-encoding of them.
    assert b'"change":' + event.raw + b"}\n" == line[-len(event.raw) - 11 :]


def test_metadata_fields_in_order() -> None:
    event = change_event(5, sub_sequence=2)
    line = parse(audit_line(event))
    assert tuple(line) == LINE_FIELDS
    assert {name: value for name, value in line.items() if name != "change"} == {
        "event_id": "event-000005",
        "event_name": "MODIFY",
        "table": "orders",
        "region": "us-east-1",
        "created_at": "2024-07-03T22:41:26.486734Z",
        "created_at_us": 1720046486486734,
        "ttl_delete": False,
        "stream": STREAM,
        "shard_id": SHARD,
        "sequence_number": sequence(5),
        "sub_sequence_number": 2,
        "arrival_time": "2024-07-03T22:41:27.128000Z",
    }


def test_ttl_deletes_are_flagged() -> None:
    ttl_record = next(r for r in DOC_RECORDS if r["userIdentity"])
    assert parse(audit_line(decoded(ttl_record)))["ttl_delete"] is True


def test_arrival_time_is_null_without_arrival() -> None:
    event = decoded(DOC_RECORDS[0], RecordPosition(STREAM, SHARD, "1", 0, None))
    assert parse(audit_line(event))["arrival_time"] is None


def test_numbers_keep_every_digit() -> None:
    record = change_event(0)
    raw = record.raw.replace(b'"SizeBytes":200', b'"SizeBytes":123456789012345678901234567890')
    line = audit_line(replace(record, raw=raw))
    assert b'"N":"12345678901234567890.123456789012345678"' in line
    assert b'"N":"1E-130"' in line
    assert b'"SizeBytes":123456789012345678901234567890' in line


def test_line_breaks_between_tokens_become_spaces() -> None:
    event = change_event(0)
    pretty = json.dumps(json.loads(event.raw), indent=2).replace("\n", "\r\n").encode()
    line = audit_line(replace(event, raw=pretty))
    assert parse(line)["change"] == json.loads(event.raw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not JSON"),
        (b"{not json}", "not JSON"),
        (b'{"a": 1', "not JSON"),
        (b'{"a": "\xff"}', "not JSON"),  # not UTF-8
        (b"\xef\xbb\xbf{}", "not JSON"),  # a byte order mark
        (b'["a list"]', "not an object"),
        (b'"text"', "not an object"),
        (b"null", "not an object"),
    ],
)
def test_payloads_that_are_not_one_json_object_are_refused(raw: bytes, reason: str) -> None:
    event = replace(change_event(0), raw=raw)
    with pytest.raises(LineError, match=reason):
        audit_line(event)


def test_without_verification_only_the_shape_is_checked() -> None:
    event = change_event(0)
    assert audit_line(event, verify_json=False) == audit_line(event)
    with pytest.raises(LineError, match="not a JSON object"):
        audit_line(replace(event, raw=b"[1]"), verify_json=False)


def test_error_messages_do_not_carry_the_payload() -> None:
    secret = b'{"card": "4111 1111 1111 1111" oops}'
    with pytest.raises(LineError) as raised:
        audit_line(replace(change_event(0), raw=secret))
    assert "4111" not in str(raised.value)


@given(st.integers(0, MAX_US))
def test_iso_text_matches_the_records_iso_utc(us: int) -> None:
    assert iso_utc_us(us) == iso_utc(us)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=KEYS, new_image=ITEMS)
def test_any_change_round_trips(keys: dict[str, Any], new_image: dict[str, Any]) -> None:
    record = destination_record(serialize(keys), serialize(new_image), None)
    event = decoded(record)
    line = parse(audit_line(event))
    assert line["change"] == orjson.loads(event.raw)
    assert line["event_id"] == record["eventID"]
