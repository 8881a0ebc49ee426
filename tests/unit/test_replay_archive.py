"""Reading the audit archive back: which objects a window needs, keys parsed, lines turned back
into the exact change records, duplicates skipped."""

from __future__ import annotations

import gzip

import pytest

from consumer.pipeline.audit.layout import ObjectLayout
from consumer.pipeline.audit.lines import audit_line, iso_utc_us
from consumer.records import ChangeEvent, DecodeError
from consumer.replay.archive import (
    HOUR_MS,
    ArchivedRecord,
    ArchiveObject,
    LineFormatError,
    RecentIds,
    batches,
    by_hour,
    decode_archived,
    hour_range,
    parse_line,
    parse_object_key,
    read_object,
    select_days,
)
from consumer.replay.window import ReplayWindow
from tests.unit.test_audit_support import CREATED_US, SHARD, STREAM, T0_MS, change_event, sequence

PREFIX = ObjectLayout("audit/").table_prefix("orders")


def test_the_window_reads_from_the_hour_before_from_to_the_cutoff_hour() -> None:
    hour = T0_MS // HOUR_MS
    assert hour_range(ReplayWindow(T0_MS, T0_MS + 10, grace_ms=0)) == (hour - 1, hour)
    assert hour_range(ReplayWindow(None, T0_MS + HOUR_MS, grace_ms=0)) == (None, hour + 1)
    assert select_days(
        ["2024-07-01", "2024-07-03", "2024-07-04", "2024-07-05"], hour - 1, hour + 3
    ) == [
        "2024-07-03",
        "2024-07-04",
    ]
    assert select_days(["2024-07-01", "2024-07-09"], None, hour) == ["2024-07-01"]


def test_object_keys_are_parsed_as_the_audit_sink_writes_them() -> None:
    event = change_event(0)
    hour = T0_MS // HOUR_MS
    key = ObjectLayout("audit/").object_key("orders", hour, event.position, event.event_id)
    assert parse_object_key(key, PREFIX) == ArchiveObject(hour, SHARD, (int(sequence(0)), 0), key)
    assert parse_object_key("audit/table=orders/dt=x/hour=1/s/1-0.ndjson.gz", PREFIX) is None
    assert (
        parse_object_key("audit/table=other/dt=2024-07-03/hour=22/s/1-0.ndjson.gz", PREFIX) is None
    )
    assert parse_object_key(key.replace(".ndjson.gz", ".tmp"), PREFIX) is None


def test_objects_replay_hour_by_hour_and_in_shard_order() -> None:
    a = ArchiveObject(5, "shardId-1", (20, 0), "k3")
    b = ArchiveObject(5, "shardId-1", (3, 0), "k2")
    c = ArchiveObject(4, "shardId-2", (99, 0), "k1")
    assert by_hour(sorted([a, b, c])) == [[c], [b, a]]


def test_a_line_gives_back_the_change_record_byte_for_byte() -> None:
    event = change_event(3, sub_sequence=2)
    record = parse_line(audit_line(event))
    assert record.data == event.raw  # numbers keep every digit: no parse and re-encode
    assert record.sequence_number == sequence(3)
    assert record.sub_sequence_number == 2
    assert record.arrival_ms == T0_MS + 3
    assert record.created_at_us == CREATED_US + 3
    assert record.event_id == event.event_id and record.stream == STREAM
    (decoded,) = decode_archived(record, STREAM, SHARD)
    assert isinstance(decoded, ChangeEvent)
    assert decoded.position == event.position
    assert decoded.new_image is not None and event.new_image is not None
    assert decoded.new_image.wire == event.new_image.wire


def test_a_line_without_arrival_time_has_arrival_zero() -> None:
    arrival = iso_utc_us((T0_MS + 1) * 1000)
    line = audit_line(change_event(1)).replace(
        f'"arrival_time":"{arrival}"'.encode(), b'"arrival_time":null'
    )
    assert parse_line(line).arrival_ms == 0


@pytest.mark.parametrize(
    "line",
    [
        b"{}",
        b'{"event_id":"x"',
        b'{"a":1,"change":[1,2]}',
        b'{"a":1,"change":{}}',
        b'not json,"change":{}}',
    ],
)
def test_lines_that_are_not_audit_lines_are_refused(line: bytes) -> None:
    with pytest.raises(LineFormatError):
        parse_line(line)


def test_an_object_reads_in_order_and_counts_bad_lines() -> None:
    lines = [audit_line(change_event(n)) for n in range(3)]
    body = gzip.compress(lines[0] + b"garbage\n\n" + lines[1] + lines[2])
    records, bad = read_object(body)
    assert [r.sequence_number for r in records] == [sequence(n) for n in range(3)]
    assert bad == 1
    with pytest.raises(LineFormatError, match="not a gzip object"):
        read_object(b"plain")


def test_a_bad_change_record_decodes_to_an_error_that_is_parked() -> None:
    record = ArchivedRecord(b'{"eventName":"NOPE"}', sequence(1), T0_MS, "")
    (result,) = decode_archived(record, STREAM, SHARD)
    assert isinstance(result, DecodeError)
    assert result.position is not None and result.position.sequence_number == sequence(1)


def test_duplicates_are_skipped_within_a_bounded_window() -> None:
    seen = RecentIds(capacity=2)
    assert seen.first_time("a") and seen.first_time("b")
    assert not seen.first_time("a")
    assert seen.first_time("c")  # forgets "b", the least recently seen
    assert seen.first_time("b")


def test_records_are_cut_into_pipeline_batches() -> None:
    records = [ArchivedRecord(b"{}", str(n), 0, "") for n in range(2500)]
    cut = batches(records, SHARD)
    assert [len(b.records) for b in cut] == [1000, 1000, 500]
    assert all(b.shard_id == SHARD and not b.shard_end for b in cut)
