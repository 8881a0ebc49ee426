"""`--dry-run`: count what a replay would read and apply, estimate its time and read cost,
write nothing (docs/replay.md, "Dry run", says what it reads and how it estimates). The
estimates are pure; prices come from `consumer.compare.costs.prices`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from consumer.compare.costs.errors import CostError
from consumer.compare.costs.prices import DEFAULT_REGION, Prices, load_region
from consumer.pipeline.decoders import decode_kinesis
from consumer.records import ChangeEvent
from consumer.replay.progress import StateListener, reporting_states
from consumer.replay.status import ReplayState, ShardTally
from consumer.replay.stream import StreamPlan
from consumer.replay.window import ReplayWindow, cut_batch, human_span, iso_ms, utc_datetime
from consumer.settings import Settings
from consumer.sources.lean import install_lean_get_records
from consumer.sources.model import StartPosition
from consumer.sources.polling import MIN_POLL_INTERVAL_S, PollingOptions, PollingReader

GB = 1_000_000_000
SHARD_READ_BYTES_PER_S = 2 * 1024 * 1024
CALLS_PER_S = 5
RECORDS_PER_CALL = 10_000


def limit_seconds(records: int, size: int) -> float:
    """The least time Kinesis' per-shard read limits allow for this much data."""
    calls = math.ceil(records / RECORDS_PER_CALL)
    return max(size / SHARD_READ_BYTES_PER_S, calls / CALLS_PER_S)


def critical_path_s(counts: Sequence[ShardTally], seconds: Mapping[str, float]) -> float:
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


_READ_CONCURRENCY = 16


@dataclass(frozen=True)
class DryRun:
    """What a dry run found."""

    counts: tuple[ShardTally, ...]  # by shard id
    elapsed_s: float
    description: str
    on_demand: bool | None = None  # None: not a stream read (archive)
    objects: int = 0


async def dry_run_stream(
    settings: Settings,
    window: ReplayWindow,
    plan: StreamPlan,
    on_state: StateListener,
) -> DryRun:
    """Reads every shard of `plan` from `--from` to the cut-off, counting records, bytes and
    the changes the replay would apply."""
    tallies = {
        shard.shard_id: ShardTally(shard.shard_id, parents=shard.parent_shard_ids)
        for shard in plan.shards
    }
    start = (
        StartPosition.trim_horizon()
        if window.from_ms is None
        else StartPosition.at_timestamp(utc_datetime(window.from_ms))
    )

    def state() -> ReplayState:
        return ReplayState.of_tallies(tallies.values(), window.to_ms)

    started = time.monotonic()
    async with settings.aws.endpoints().aio_client("kinesis") as client:
        install_lean_get_records(client)
        reader = PollingReader(
            client, plan.facts.arn, PollingOptions(interval_s=MIN_POLL_INTERVAL_S)
        )
        limit = asyncio.Semaphore(_READ_CONCURRENCY)

        async def count(shard_id: str) -> None:
            tally = tallies[shard_id]
            async with limit:
                async for batch in reader.read(shard_id, start):
                    cut = cut_batch(batch, window.cutoff_ms)
                    records = cut.batch.records
                    tally.saw(records)
                    tally.bytes += sum(len(record.data) for record in records)
                    tally.changes += sum(
                        1
                        for record in records
                        for result in decode_kinesis(record, plan.facts.arn, shard_id)
                        if isinstance(result, ChangeEvent) and window.applies(result.created_at_us)
                    )
                    if cut.end is not None:
                        tally.done, tally.end = True, cut.end.value
                        return

        async with (
            reporting_states(on_state, state, asyncio.Event()),
            asyncio.TaskGroup() as group,
        ):
            for shard in plan.shards:
                group.create_task(count(shard.shard_id))
    on_state(state())
    facts = plan.facts
    return DryRun(
        counts=tuple(tally for _, tally in sorted(tallies.items())),
        elapsed_s=time.monotonic() - started,
        description=(
            f"stream {facts.name} ({'on-demand' if facts.on_demand else 'provisioned'}, "
            f"{len(plan.shards)} shards in the window)"
        ),
        on_demand=facts.on_demand,
    )


def render(result: DryRun, window: ReplayWindow, region: str) -> list[str]:
    """The dry run's report, one string per line."""
    start = "the oldest record" if window.from_ms is None else iso_ms(window.from_ms)
    lines = [
        f"dry run: {result.description}",
        f"  window: arrived from {start}, changes made up to {iso_ms(window.to_ms)} "
        f"(read until arrival {iso_ms(window.cutoff_ms)})",
    ]
    rows = [("SHARD", "RECORDS", "MB", "CHANGES", "END")]
    rows += [
        (c.shard_id, f"{c.records:,}", f"{c.bytes / 1e6:.2f}", f"{c.changes:,}", c.end or "-")
        for c in result.counts
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    records = sum(count.records for count in result.counts)
    size = sum(count.bytes for count in result.counts)
    changes = sum(count.changes for count in result.counts)
    rate = records / result.elapsed_s if result.elapsed_s > 0 else 0.0
    extra = f" from {result.objects:,} objects" if result.objects else ""
    lines.append(
        f"  total: {records:,} records ({changes:,} changes to apply), "
        f"{size / 1e6:.2f} MB{extra}, read in {result.elapsed_s:.1f} s "
        f"({rate:,.0f} records/s)"
    )
    limits = {c.shard_id: limit_seconds(c.records, c.bytes) for c in result.counts}
    at_limits = critical_path_s(result.counts, limits)
    lines.append(
        f"  time: about {human_span(result.elapsed_s * 1000)} at the rate this dry run read "
        "(the sinks may be slower)"
        + (
            f"; at least {human_span(at_limits * 1000)} at Kinesis' per-shard read limits"
            if result.on_demand is not None
            else ""
        )
    )
    if result.on_demand is None:
        lines.append(
            f"  cost: {result.objects:,} S3 GET requests, {size / 1e6:.2f} MB "
            "transferred; no Kinesis reads"
        )
        return lines
    try:
        sheet = load_region(region)
    except CostError:
        sheet = load_region(DEFAULT_REGION)
    hours = max(result.elapsed_s, at_limits) / 3600
    as_of = sheet.prices.kinesis_on_demand_read_gb.as_of
    lines.append(f"  Kinesis read cost ({sheet.region} prices as of {as_of}):")
    for cost in read_costs(size, result.on_demand, len(result.counts), hours, sheet.prices):
        lines.append(f"    {cost.label:<26} ${cost.usd:,.4f}  ({cost.detail})")
    lines.append(
        "  this dry run made the same GetRecords reads"
        + (", at the polling price above" if result.on_demand else " (included in shard-hours)")
    )
    return lines
