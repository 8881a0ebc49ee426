"""The shared table reader (consumer/snapshot/table_reader.py) as `consumer verify` uses it:
pages committed when the caller asks for the next one, resumed after the last committed page
by a reader that starts again, segments shared by two readers; and `backfill --dry-run`."""

from __future__ import annotations

import asyncio
import time

import pytest

from checkpoints.table import lease_table_definition
from consumer.cli import main
from consumer.local.stack import LocalStackState
from consumer.snapshot.rate import ReadUnitLimiter
from consumer.snapshot.segments import SnapshotLeases
from consumer.snapshot.table_reader import TableReader, begin_scan_snapshot
from tests.service_harness import Deployment
from tests.snapshot.world import create_world

ITEMS = 120


def _setup(local_stack: LocalStackState, name: str) -> Deployment:
    deployment = Deployment(local_stack, name, shards=1)
    create_world(deployment, ITEMS)
    deployment.endpoints.client("dynamodb").create_table(**lease_table_definition(f"{name}-leases"))
    return deployment


def test_a_reader_stopped_half_way_resumes_after_the_last_committed_page(
    local_stack: LocalStackState, unique_name: str
) -> None:
    deployment = _setup(local_stack, unique_name)

    async def scenario() -> tuple[list[str], list[str], list[int]]:
        async with deployment.endpoints.aio_client("dynamodb") as client:
            leases = SnapshotLeases(client, f"{unique_name}-leases", lease_s=30)
            snapshot = await begin_scan_snapshot(
                leases,
                snapshot_id="v1",
                purpose="verify",
                table=deployment.table,
                segments=1,
                pipelines=(),
                now_us=1,
            )
            # Pages of 25 items: the one segment is read in several.
            first: list[str] = []
            pages = TableReader(client, snapshot, leases, "w", page_items=25).pages()
            seen = 0
            async for page in pages:
                first.extend(item["pk"]["S"] for item in page.items)
                seen += 1
                if seen == 3:  # the 3rd page is yielded but never committed: a crash
                    break
            await pages.aclose()
            starts: list[int] = []
            again: list[str] = []
            reader = TableReader(client, snapshot, leases, "w", page_items=25)
            async for page in reader.pages():
                starts.append(page.first_ordinal)
                again.extend(item["pk"]["S"] for item in page.items)
            return first, again, starts

    first, again, starts = asyncio.run(scenario())
    assert len(set(first)) == 75
    # Pages 1 and 2 (50 items) were committed; page 3 is read again, then the rest.
    assert starts[0] == 50
    assert len(again) == ITEMS - 50
    assert set(first[:50]) | set(again) == {f"order#{i:06d}" for i in range(ITEMS)}
    assert not set(first[:50]) & set(again)


def test_two_readers_share_the_segments_and_read_every_item_once(
    local_stack: LocalStackState, unique_name: str
) -> None:
    deployment = _setup(local_stack, unique_name)

    async def scenario() -> tuple[list[str], list[str]]:
        async with deployment.endpoints.aio_client("dynamodb") as client:
            leases = SnapshotLeases(client, f"{unique_name}-leases", lease_s=30)
            snapshot = await begin_scan_snapshot(
                leases,
                snapshot_id="v2",
                purpose="verify",
                table=deployment.table,
                segments=4,
                pipelines=(),
                now_us=1,
            )

            async def read(worker: str) -> list[str]:
                keys: list[str] = []
                async for page in TableReader(client, snapshot, leases, worker).pages():
                    assert page.scan_start_us > 0
                    keys.extend(item["pk"]["S"] for item in page.items)
                return keys

            a, b = await asyncio.gather(read("a"), read("b"))
            return a, b

    a, b = asyncio.run(scenario())
    assert sorted(a + b) == [f"order#{i:06d}" for i in range(ITEMS)]
    assert a and b


def test_backfill_dry_run_prints_count_size_duration_and_cost(
    local_stack: LocalStackState,
    unique_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment = _setup(local_stack, unique_name)
    for key, value in deployment.environment().items():
        monkeypatch.setenv(key, value)
    code = main(["backfill", "--table", deployment.table, "--source", "scan", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"table {deployment.table}: {ITEMS} items" in out
    assert "read units (Scan, eventually consistent)" in out
    assert "replication writes: " in out and "estimated duration" in out
    assert "estimated cost: $" in out
    # Nothing was started: no snapshot item in the lease table.
    leases = deployment.endpoints.client("dynamodb").scan(TableName=f"{unique_name}-leases")
    assert leases["Items"] == []
    code = main(["backfill", "--table", f"{unique_name}-nope", "--dry-run"])
    assert code == 1
    assert "does not exist" in capsys.readouterr().err


def test_the_reader_pays_the_consumed_capacity_scan_reports_and_keeps_to_the_rate(
    local_stack: LocalStackState, unique_name: str
) -> None:
    # moto answers ReturnConsumedCapacity=TOTAL with 1 unit per Scan call (AWS reports the
    # real figure); without the parameter it reports nothing and the reader would estimate
    # from the page's size: 1.5 units for a page of ten 1.1 KB items (half a unit per 4 KB).
    deployment = _setup(local_stack, unique_name)

    async def scenario() -> tuple[float, int, float]:
        async with deployment.endpoints.aio_client("dynamodb") as client:
            leases = SnapshotLeases(client, f"{unique_name}-leases", lease_s=30)
            snapshot = await begin_scan_snapshot(
                leases,
                snapshot_id="v3",
                purpose="verify",
                table=deployment.table,
                segments=1,
                pipelines=(),
                now_us=1,
            )
            limiter = ReadUnitLimiter(2.0)
            reader = TableReader(client, snapshot, leases, "w", limiter=limiter, page_items=10)
            started = time.monotonic()
            async for _page in reader.pages():
                pass
            return reader.stats.read_units, reader.stats.pages, time.monotonic() - started

    units, pages, elapsed = asyncio.run(scenario())
    assert pages >= ITEMS // 10
    assert units == 1.0 * pages  # what Scan reported, not an estimate
    # At 2 units/s, a bucket of 2 and one page (1 unit) of debt: at least (units - 3) / 2 s.
    assert elapsed >= (units - 3) / 2
