"""--dry-run's estimates: the lineage bounds the replay time, read limits, the read cost from
the packaged prices, and the report."""

from __future__ import annotations

import pytest

from consumer.compare.costs.prices import load_region
from consumer.replay.dry_run import (
    DryRun,
    critical_path_s,
    limit_seconds,
    read_costs,
    render,
)
from consumer.replay.status import ShardTally
from consumer.replay.window import ReplayWindow

PRICES = load_region("us-east-1").prices
GB = 1_000_000_000


def count(shard_id: str, *parents: str, records: int = 0, size: int = 0) -> ShardTally:
    return ShardTally(shard_id, records=records, bytes=size, parents=frozenset(parents))


def test_lineages_run_in_parallel_and_children_after_parents() -> None:
    counts = [count("p"), count("c1", "p"), count("c2", "p"), count("m", "c1", "c2"), count("x")]
    seconds = {"p": 10.0, "c1": 5.0, "c2": 7.0, "m": 1.0, "x": 15.0}
    assert critical_path_s(counts, seconds) == 18.0  # p, c2, m
    assert critical_path_s([], {}) == 0.0


def test_read_limits_per_shard() -> None:
    assert limit_seconds(records=0, size=2 * 1024 * 1024 * 60) == 60.0  # 2 MiB/s
    assert limit_seconds(records=500_000, size=0) == 10.0  # 50 calls at 5 per second


def test_on_demand_reads_are_billed_per_gb() -> None:
    polling, efo = read_costs(10 * GB, True, 4, 2.0, PRICES)
    assert polling.usd == pytest.approx(0.40) and efo.usd == pytest.approx(0.50)


def test_provisioned_polling_is_included_and_efo_adds_consumer_shard_hours() -> None:
    polling, efo = read_costs(10 * GB, False, 4, 2.5, PRICES)
    assert polling.usd == 0.0 and "included" in polling.detail
    assert efo.usd == pytest.approx(10 * 0.013 + 4 * 2.5 * 0.015)


def test_the_report() -> None:
    result = DryRun(
        counts=(
            ShardTally(
                "shardId-000000000000", 1200, end="shard-end", bytes=3_000_000, changes=1100
            ),
            ShardTally(
                "shardId-000000000001",
                800,
                end="reached-to",
                bytes=2_000_000,
                changes=800,
                parents=frozenset({"shardId-000000000000"}),
            ),
        ),
        elapsed_s=4.0,
        description="stream orders (on-demand, 2 shards in the window)",
        on_demand=True,
    )
    lines = render(result, ReplayWindow(1_795_813_200_000, 1_795_816_800_000), "us-east-1")
    text = "\n".join(lines)
    assert lines[0] == "dry run: stream orders (on-demand, 2 shards in the window)"
    assert "arrived from 2026-11-27T21:00:00Z, changes made up to 2026-11-27T22:00:00Z" in text
    assert "shardId-000000000001  800      2.00  800      reached-to" in text
    assert "total: 2,000 records (1,900 changes to apply), 5.00 MB" in text
    assert "(500 records/s)" in text
    assert "polling (replay default)   $0.0002" in text
    assert "this dry run made the same GetRecords reads, at the polling price above" in text


def test_an_unknown_region_falls_back_to_the_default_prices() -> None:
    result = DryRun((count("s", records=1, size=GB),), 1.0, "stream s", on_demand=True)
    assert "us-east-1 prices" in "\n".join(render(result, ReplayWindow(None, 10), "xx-nowhere-1"))
