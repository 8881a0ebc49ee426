"""Estimates for `--dry-run`: replay time and the Kinesis read cost. Pure: no I/O.

Time: shards of one lineage are read one after the other (parents before children), shards
of different lineages at once, so the replay takes at least the longest lineage's read time.
Two bounds are reported: at the rate the dry run itself read (the same polling reads a
replay makes; the sinks may be slower), and at Kinesis' per-shard read limits (2 MiB/s and
5 GetRecords calls/s of up to 10,000 records), the best a replay can do.

Cost: reading is billed per GB on on-demand streams ($0.04/GB shared polling, $0.05/GB EFO);
on provisioned streams polling is included in the shard-hours and EFO costs $0.013/GB plus a
consumer-shard-hour per shard while the consumer is registered. Prices come from the
packaged price sheet (`consumer.compare.costs.prices`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from consumer.compare.costs.prices import Prices

GB = 1_000_000_000
SHARD_READ_BYTES_PER_S = 2 * 1024 * 1024
CALLS_PER_S = 5
RECORDS_PER_CALL = 10_000


@dataclass(frozen=True)
class ShardCount:
    """What a dry run read from one shard."""

    shard_id: str
    parents: frozenset[str]
    records: int
    bytes: int
    changes: int = 0  # changes the replay would apply (made at or before --to)
    end: str = ""


def limit_seconds(records: int, size: int) -> float:
    """The least time Kinesis' per-shard read limits allow for this much data."""
    calls = math.ceil(records / RECORDS_PER_CALL)
    return max(size / SHARD_READ_BYTES_PER_S, calls / CALLS_PER_S)


def critical_path_s(counts: Sequence[ShardCount], seconds: Mapping[str, float]) -> float:
    """The longest parent-to-child chain of per-shard seconds (lineages run in parallel)."""
    by_id = {count.shard_id: count for count in counts}
    memo: dict[str, float] = {}

    def finish(shard_id: str, depth: int) -> float:
        if shard_id in memo:
            return memo[shard_id]
        count = by_id[shard_id]
        parents = [p for p in count.parents if p in by_id]
        before = (
            max(finish(p, depth + 1) for p in parents) if parents and depth < len(by_id) else 0.0
        )
        memo[shard_id] = before + seconds.get(shard_id, 0.0)
        return memo[shard_id]

    return max((finish(count.shard_id, 0) for count in counts), default=0.0)


@dataclass(frozen=True)
class CostLine:
    label: str
    usd: float
    detail: str


def read_costs(
    size: int, on_demand: bool, shards: int, hours: float, prices: Prices
) -> list[CostLine]:
    """The Kinesis read cost of replaying `size` bytes, polling and (for comparison) EFO."""
    gb = size / GB
    if on_demand:
        polling = prices.kinesis_on_demand_read_gb.value
        efo = prices.kinesis_on_demand_efo_read_gb.value
        return [
            CostLine("polling (replay default)", gb * polling, f"{gb:.4f} GB x ${polling}/GB"),
            CostLine("enhanced fan-out", gb * efo, f"{gb:.4f} GB x ${efo}/GB"),
        ]
    efo_gb = prices.kinesis_efo_read_gb.value
    shard_hour = prices.kinesis_efo_consumer_shard_hour.value
    consumer_hours = shards * max(hours, 1.0)  # billed by the hour while registered
    return [
        CostLine("polling (replay default)", 0.0, "included in the provisioned shard-hours"),
        CostLine(
            "enhanced fan-out",
            gb * efo_gb + consumer_hours * shard_hour,
            f"{gb:.4f} GB x ${efo_gb}/GB + {consumer_hours:.0f} consumer-shard-hours "
            f"x ${shard_hour}",
        ),
    ]
