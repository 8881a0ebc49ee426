"""Unit tests of the snapshot pieces: the read-unit limiter, snapshot records, export files,
the stitching rules, the dry-run estimate and the progress line."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import pytest
from botocore.exceptions import ClientError

from checkpoints.model import snapshot_from_items
from consumer.compare.costs.prices import load_region
from consumer.pipeline.decoders import decode_kinesis
from consumer.records import ChangeEvent, EventName
from consumer.records.batch import RawRecord
from consumer.records.ordering import ABSENT, UNKNOWN
from consumer.snapshot.backfill import access_denied_line
from consumer.snapshot.dry_run import estimate_backfill
from consumer.snapshot.export_reader import (
    CorruptDataFile,
    ExportProblem,
    _prefixed,
    check_export,
    gzip_lines,
    parse_line,
)
from consumer.snapshot.progress import ProgressFigures, progress_line
from consumer.snapshot.rate import ReadUnitLimiter
from consumer.snapshot.records import snapshot_record_data
from consumer.snapshot.stitch import StitchError, StitchFacts, check_initial_position, check_static
from tests.fake_time import FakeTime

HOUR_US = 3_600_000_000


def test_the_limiter_keeps_consumed_units_at_or_under_the_rate_over_a_window() -> None:
    time = FakeTime()
    limiter = ReadUnitLimiter(10, clock=time.clock, sleep=time.sleep)

    async def scan_pages() -> None:
        for _ in range(100):
            await limiter.acquire()
            limiter.pay(4.0)  # each page costs 4 units, known only after the call

    asyncio.run(scan_pages())
    # Units consumed by time T are at most R*T + R (a second of burst) + one page (paid
    # after the call): 400 <= 10*T + 10 + 4, so T >= 38.6 s; and it never waits longer.
    assert time.now == pytest.approx(38.6, abs=0.01)
    assert limiter.consumed == 400


def test_the_limiter_sizes_pages_to_a_second_of_units_below_a_full_page() -> None:
    assert ReadUnitLimiter(10).page_limit(0.5) == 20
    assert ReadUnitLimiter(1000).page_limit(0.5) is None
    assert ReadUnitLimiter(10).page_limit(0.0) is None


def _snapshot_event(item: dict[str, Any], version_us: int, ordinal: int = 3) -> ChangeEvent:
    data = snapshot_record_data(
        item,
        ["pk"],
        table="orders",
        region="us-east-1",
        snapshot_id="orders-1",
        part="segment-0001",
        ordinal=ordinal,
        version_us=version_us,
    )
    (event,) = decode_kinesis(RawRecord(data, str(ordinal), 1, ""), "snapshot/orders-1", "s")
    assert isinstance(event, ChangeEvent)
    return event


def test_a_snapshot_item_is_a_modify_without_old_image_at_the_snapshot_version() -> None:
    item = {"pk": {"S": "a"}, "blob": {"B": b"\x00\xff"}, "n": {"N": "1.50"}}
    event = _snapshot_event(item, 1_700_000_000_123_456)
    assert event.event_name is EventName.MODIFY
    assert event.old_image is None
    assert event.version == 1_700_000_000_123_456
    assert event.keys.wire == {"pk": {"S": "a"}}
    assert event.new_image is not None
    assert event.new_image.wire["blob"] == {"B": "AP8="}  # base64, as in stream records
    assert event.new_image.wire["n"] == {"N": "1.50"}  # exact digits
    assert event.event_id == "snapshot:orders-1:segment-0001:3"


def test_a_snapshot_item_claims_no_predecessor_and_comes_first_at_a_tie() -> None:
    # Ties are decided by the states changes connect (consumer.records.ordering): an INSERT
    # claims to follow "no item" and would beat a tombstone of the same version. A snapshot
    # item replaces an unknown state, and its sequence (its ordinal) is below any Kinesis
    # sequence number, so the last-resort rule lets the stream's change win.
    event = _snapshot_event({"pk": {"S": "a"}, "x": {"N": "1"}}, 5, ordinal=7)
    transition = event.transition
    assert transition.before == UNKNOWN and transition.before != ABSENT
    assert transition.after not in (UNKNOWN, ABSENT)
    assert transition.sequence == (7, 0) < (49_000_000_000_000_000_000_000, 0)


def _gunzip_lines(data: bytes, chunk: int = 1000) -> tuple[list[bytes], str | None]:
    """The lines `gzip_lines` yields from `data` sent in chunks, and its problem if any."""

    async def collect() -> tuple[list[bytes], str | None]:
        async def chunks() -> Any:
            for start in range(0, len(data), chunk):
                yield data[start : start + chunk]

        lines: list[bytes] = []
        try:
            async for line in gzip_lines(chunks()):
                lines.append(line)
        except CorruptDataFile as problem:
            # The damage is reported after the lines before it, and counts them.
            return lines, f"{problem} after {problem.lines}"
        return lines, None

    return asyncio.run(collect())


def test_gzip_lines_keep_what_came_before_a_corruption() -> None:
    text = b"".join(b'{"Item":{"pk":{"S":"%d"}}}\n' % i for i in range(200))
    whole = gzip.compress(text)
    assert _gunzip_lines(whole) == (text.splitlines(), None)
    lines, problem = _gunzip_lines(whole[: len(whole) // 2])
    assert problem == f"truncated after {len(lines)}"
    assert 0 < len(lines) < 200 and lines == text.splitlines()[: len(lines)]
    lines, problem = _gunzip_lines(b"not gzip at all")
    assert lines == [] and problem is not None


def test_gzip_lines_read_members_one_after_another_and_a_last_line_without_newline() -> None:
    # gzip files may hold several members (RFC 1952 2.2); gunzip reads them all.
    first, second = b"a\nb\n", b"c\nd"
    assert _gunzip_lines(gzip.compress(first) + gzip.compress(second), chunk=3) == (
        [b"a", b"b", b"c", b"d"],
        None,
    )


def test_export_lines_that_are_not_items_are_refused_without_their_contents() -> None:
    assert parse_line(b'{"Item": {"pk": {"S": "a"}}}') == {"pk": {"S": "a"}}
    for bad, reason in (
        (b"{not json", "not JSON"),
        (b'{"Item": 12}', "Item"),
        (b'{"Item": {"pk": "secret"}}', "typed"),
    ):
        with pytest.raises(ValueError, match=reason) as raised:
            parse_line(bad)
        assert "secret" not in str(raised.value)


def test_manifest_keys_are_found_with_or_without_the_export_prefix() -> None:
    assert _prefixed("exp", "AWSDynamoDB/1/data/a.json.gz") == "exp/AWSDynamoDB/1/data/a.json.gz"
    assert _prefixed("exp/", "exp/AWSDynamoDB/1/x") == "exp/AWSDynamoDB/1/x"
    assert _prefixed("", "AWSDynamoDB/1/x") == "AWSDynamoDB/1/x"


ARN = "arn:aws:dynamodb:us-east-1:111122223333:table/orders"


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ({"TableArn": ARN.replace("111122223333", "999999999999")}, "another table"),
        ({"TableArn": ARN.replace("us-east-1", "eu-west-1")}, "another table"),
        ({"TableArn": ARN, "ExportStatus": "FAILED", "FailureCode": "S3NoSuchBucket"}, "failed"),
        ({"TableArn": ARN, "ExportFormat": "ION"}, "DYNAMODB_JSON"),
        ({"TableArn": ARN, "ExportType": "INCREMENTAL_EXPORT"}, "incremental"),
    ],
)
def test_unusable_exports_are_one_line(description: dict[str, Any], expected: str) -> None:
    with pytest.raises(ExportProblem, match=expected) as raised:
        check_export({"ExportArn": f"{ARN}/export/1", **description}, ARN)
    assert "\n" not in str(raised.value)


def _facts(**changes: Any) -> StitchFacts:
    values: dict[str, Any] = {
        "snapshot_us": 100 * HOUR_US,
        "version_us": 100 * HOUR_US - 300_000_000,
        "now_us": 101 * HOUR_US,
        "retention_hours": 24,
        "initial_position": "TRIM_HORIZON",
        "tombstone_ttl_s": 7 * 86_400,
    }
    values.update(changes)
    return StitchFacts(**values)


def test_stitching_refuses_a_snapshot_older_than_the_streams_retention() -> None:
    check_static(_facts())
    with pytest.raises(StitchError, match="keeps 24 h"):
        check_static(_facts(now_us=125 * HOUR_US))


def test_stitching_refuses_a_snapshot_older_than_the_replicas_tombstones() -> None:
    with pytest.raises(StitchError, match="tombstone lifetime"):
        check_static(_facts(retention_hours=None, tombstone_ttl_s=3600))


def test_stitching_refuses_a_consumer_that_would_start_after_the_snapshot() -> None:
    check_initial_position(_facts(initial_position="AT_TIMESTAMP=1970-01-04T00:00:00+00:00"))
    with pytest.raises(StitchError, match="LATEST"):
        check_initial_position(_facts(initial_position="LATEST"))
    with pytest.raises(StitchError, match="after the snapshot time"):
        check_initial_position(_facts(initial_position="AT_TIMESTAMP=2030-01-01T00:00:00Z"))


def test_missing_permissions_name_the_call_and_the_policy() -> None:
    error = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ExportTableToPointInTime"
    )
    line = access_denied_line(error)
    assert line is not None and "ExportTableToPointInTime" in line and "BackfillPolicy" in line
    other = ClientError({"Error": {"Code": "ValidationException", "Message": "x"}}, "Scan")
    assert access_denied_line(other) is None


def test_the_dry_run_prices_scan_reads_export_gb_and_replica_writes() -> None:
    table = {"TableName": "orders", "ItemCount": 1_000_000, "TableSizeBytes": 1_000_000_000}
    prices = load_region("us-east-1")
    scan = estimate_backfill(
        table,
        source="scan",
        pipelines=("replication",),
        workers=1,
        max_read_units=1000,
        prices=prices,
    )
    # 1 GB / 4 KB * 0.5 = 122,071 read units; 1 KB items: 1 write unit each.
    assert scan.read_units == pytest.approx(122_070.5, abs=1)
    assert scan.write_units == 1_000_000
    assert scan.duration_s == pytest.approx(max(scan.read_units / 1000, 1_000_000 / 1500))
    assert scan.read_usd == pytest.approx(scan.read_units / 1e6 * 0.125)
    export = estimate_backfill(
        table,
        source="export",
        pipelines=("search",),
        workers=2,
        max_read_units=None,
        prices=prices,
    )
    assert export.read_units == 0 and export.write_units == 0
    assert export.export_usd == pytest.approx(0.1)


def test_the_progress_line_shows_items_share_parts_rate_and_eta() -> None:
    line = progress_line(ProgressFigures(500, 2_000_000, 3, 8, 100.0, 1000))
    assert line == "500 items (50%), 2.0 MB, 3/8 parts, 100 items/s, ETA 0m05s"


def test_the_shard_coordinator_never_sees_snapshot_parts_as_shard_leases() -> None:
    # Snapshot parts share the lease table; a coordinator that took one for a shard would try
    # to read a shard named "__snapshot__#…" and hold the part hostage.
    items = [
        {
            "leaseKey": {"S": "shardId-000000000001"},
            "leaseCounter": {"N": "1"},
            "checkpoint": {"S": "TRIM_HORIZON"},
        },
        {
            "leaseKey": {"S": "__snapshot__#orders-1#segment-0000"},
            "leaseCounter": {"N": "3"},
            "partName": {"S": "segment-0000"},
        },
        {"leaseKey": {"S": "__snapshot__#current#backfill#orders"}, "snapshotId": {"S": "x"}},
    ]
    snapshot = snapshot_from_items(items)
    assert [lease.key for lease in snapshot.leases] == ["shardId-000000000001"]
