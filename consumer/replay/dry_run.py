"""`--dry-run`: count what a replay would read and apply, estimate its time and read cost,
write nothing.

From the stream it reads every shard of the window with GetRecords, exactly as the replay
would (so on an on-demand stream the dry run costs what the replay's reads cost, and it shares
the shards' 5 GetRecords calls/s with other polling consumers). From the archive it lists and
reads the window's objects (S3 GETs; no Kinesis reads).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from consumer.compare.costs.errors import CostError
from consumer.compare.costs.prices import DEFAULT_REGION, load_region
from consumer.pipeline.decoders import decode_kinesis
from consumer.records import ChangeEvent
from consumer.replay.cutoff import cut_batch
from consumer.replay.estimate import (
    ShardCount,
    critical_path_s,
    limit_seconds,
    read_costs,
)
from consumer.replay.status import ReplayState, ShardStatus
from consumer.replay.stream import StreamPlan
from consumer.replay.times import human_span, iso_ms
from consumer.replay.window import ReplayWindow
from consumer.settings import Settings
from consumer.sources.lean import install_lean_get_records
from consumer.sources.model import StartPosition
from consumer.sources.polling import MIN_POLL_INTERVAL_S, PollingOptions, PollingReader

StateListener = Callable[[ReplayState], object]
_READ_CONCURRENCY = 16


@dataclass(frozen=True)
class DryRun:
    """What a dry run found."""

    counts: tuple[ShardCount, ...]
    elapsed_s: float
    description: str
    on_demand: bool | None = None  # None: not a stream read (archive)
    objects: int = 0

    @property
    def records(self) -> int:
        return sum(count.records for count in self.counts)

    @property
    def bytes(self) -> int:
        return sum(count.bytes for count in self.counts)

    @property
    def changes(self) -> int:
        return sum(count.changes for count in self.counts)


@dataclass
class _Tally:
    records: int = 0
    size: int = 0
    changes: int = 0
    at_ms: int | None = None
    end: str = ""


async def dry_run_stream(
    settings: Settings,
    window: ReplayWindow,
    plan: StreamPlan,
    on_state: StateListener | None = None,
    poll_s: float = 1.0,
) -> DryRun:
    """Reads every shard of `plan` from `--from` to the cut-off, counting records, bytes and
    the changes the replay would apply."""
    notify = on_state or (lambda state: None)
    tallies = {shard.shard_id: _Tally() for shard in plan.shards}
    start = (
        StartPosition.trim_horizon()
        if window.from_ms is None
        else StartPosition.at_timestamp(_datetime(window.from_ms))
    )

    def state() -> ReplayState:
        return ReplayState(
            tuple(
                ShardStatus(
                    shard_id=shard_id,
                    records=tally.records,
                    at_ms=tally.at_ms,
                    done_to_ms=window.to_ms if tally.end else None,
                )
                for shard_id, tally in sorted(tallies.items())
            )
        )

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
                    for record in cut.batch.records:
                        tally.records += 1
                        tally.size += len(record.data)
                        tally.at_ms = record.arrival_ms
                        tally.changes += sum(
                            1
                            for result in decode_kinesis(record, plan.facts.arn, shard_id)
                            if isinstance(result, ChangeEvent)
                            and window.applies(result.created_at_us)
                        )
                    if cut.end is not None:
                        tally.end = cut.end.value
                        return

        async def tick() -> None:
            while True:
                notify(state())
                await asyncio.sleep(poll_s)

        ticker = asyncio.create_task(tick())
        try:
            async with asyncio.TaskGroup() as group:
                for shard in plan.shards:
                    group.create_task(count(shard.shard_id))
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
    notify(state())
    parents = {shard.shard_id: shard.parent_shard_ids for shard in plan.shards}
    facts = plan.facts
    return DryRun(
        counts=tuple(
            ShardCount(shard_id, parents[shard_id], t.records, t.size, t.changes, t.end)
            for shard_id, t in sorted(tallies.items())
        ),
        elapsed_s=time.monotonic() - started,
        description=(
            f"stream {facts.name} ({'on-demand' if facts.on_demand else 'provisioned'}, "
            f"{len(plan.shards)} shards in the window)"
        ),
        on_demand=facts.on_demand,
    )


def _datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


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
    rate = result.records / result.elapsed_s if result.elapsed_s > 0 else 0.0
    extra = f" from {result.objects:,} objects" if result.objects else ""
    lines.append(
        f"  total: {result.records:,} records ({result.changes:,} changes to apply), "
        f"{result.bytes / 1e6:.2f} MB{extra}, read in {result.elapsed_s:.1f} s "
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
            f"  cost: {result.objects:,} S3 GET requests, {result.bytes / 1e6:.2f} MB "
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
    for cost in read_costs(result.bytes, result.on_demand, len(result.counts), hours, sheet.prices):
        lines.append(f"    {cost.label:<26} ${cost.usd:,.4f}  ({cost.detail})")
    lines.append(
        "  this dry run made the same GetRecords reads"
        + (", at the polling price above" if result.on_demand else " (included in shard-hours)")
    )
    return lines
