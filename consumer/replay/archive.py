"""Archive replay: the chosen pipelines fed from the audit archive in S3, for history older
than the stream's retention.

Order and versioning are the stream replay's:
- within a shard, objects are read in the order of their first record and their lines in
  file order, which is shard order (sequence, sub-sequence), through the same
  `ShardPipeline` (retries, bisection, the DLQ) with the same change-time filter at `--to`;
  lines are selected by their own arrival time (at or after `--from`, at most the cut-off);
- across shards, partitions are replayed hour by hour (each hour's shards concurrently), so
  parents come before children at hour granularity. Finer order does not matter for the
  result: every sink keeps the newest version of each item by change time, so applying two
  shards' changes in either order converges to the same state; order only saves writes.
- a change the archive holds twice (same event id) is applied once (`RecentIds`).

It runs in one process (no leases, no checkpoints: an interrupted archive replay starts over,
which the versioned sinks make harmless). Throughput is bound by S3 GETs and the sinks, and
one process reads several shards at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import structlog

from consumer.pipeline.processor import ShardPipeline, ShardStopped
from consumer.records.batch import ReadBatch
from consumer.replay.archive_index import ArchiveLocation, ArchiveObject
from consumer.replay.archive_lines import (
    ArchivedRecord,
    LineFormatError,
    RecentIds,
    decode_archived,
    read_object,
)
from consumer.replay.cutoff import ChangeTimeFilter
from consumer.replay.dry_run import DryRun
from consumer.replay.estimate import ShardCount
from consumer.replay.outcome import LocalTotals, ReplayOutcome
from consumer.replay.request import ReplayRequest, replay_settings
from consumer.replay.status import STOPPED, ReplayState, ShardStatus
from consumer.service.pipelines import build_dlq, open_pipeline_clients, routes_factory
from consumer.settings import Settings

log = structlog.get_logger(__name__)

BATCH_RECORDS = 1000
SHARD_CONCURRENCY = 8
StateListener = Callable[[ReplayState], object]


class NoCheckpoints:
    """An archive replay keeps no checkpoints (see the module docstring)."""

    async def checkpoint(self, sequence_number: str, sub_sequence_number: int = 0) -> None:
        return None

    async def checkpoint_shard_end(self, child_shard_ids: Iterable[str] = ()) -> None:
        return None


@dataclass
class ArchiveShard:
    """One shard's progress through the archive."""

    shard_id: str
    records: int = 0
    at_ms: int | None = None
    done: bool = False
    error: str | None = None
    pipeline: ShardPipeline | None = None

    def status(self, to_ms: int) -> ShardStatus:
        return ShardStatus(
            shard_id=self.shard_id,
            records=self.records,
            at_ms=self.at_ms,
            done_to_ms=to_ms if self.done else None,
            end=STOPPED if self.error else None,
            error=self.error,
        )


@dataclass
class ArchiveTotals:
    objects: int = 0
    bytes: int = 0
    lines: int = 0
    bad_lines: int = 0
    duplicates: int = 0
    outside_window: int = 0
    shards: dict[str, ArchiveShard] = field(default_factory=dict)


def batches(records: Sequence[ArchivedRecord], shard_id: str) -> list[ReadBatch]:
    """Records cut into pipeline batches of at most BATCH_RECORDS."""
    return [
        ReadBatch(shard_id, records[start : start + BATCH_RECORDS], None, None)
        for start in range(0, len(records), BATCH_RECORDS)
    ]


def by_hour(objects: Sequence[ArchiveObject]) -> list[list[ArchiveObject]]:
    """Objects grouped by partition hour, ascending (objects come sorted)."""
    groups: dict[int, list[ArchiveObject]] = defaultdict(list)
    for item in objects:
        groups[item.hour].append(item)
    return [groups[hour] for hour in sorted(groups)]


class ArchiveReplay:
    """Replays `objects` (from `archive_index.list_objects`) into the request's pipelines.
    Constructing it does no I/O."""

    def __init__(
        self,
        settings: Settings,
        request: ReplayRequest,
        location: ArchiveLocation,
        objects: Sequence[ArchiveObject],
        *,
        on_state: StateListener | None = None,
        poll_s: float = 1.0,
    ) -> None:
        self.settings = replay_settings(settings, request)
        self.request = request
        self.location = location
        self.objects = list(objects)
        self._on_state = on_state or (lambda state: None)
        self._poll_s = poll_s
        self._seen = RecentIds()
        self.totals = ArchiveTotals()

    def state(self) -> ReplayState:
        to_ms = self.request.window.to_ms
        return ReplayState(
            tuple(shard.status(to_ms) for _, shard in sorted(self.totals.shards.items()))
        )

    async def run(self, stop: asyncio.Event) -> ReplayOutcome:
        settings = self.settings
        window = self.request.window
        self.totals.shards = {item.shard_id: ArchiveShard(item.shard_id) for item in self.objects}
        decoder = ChangeTimeFilter(decode_archived, window)
        async with AsyncExitStack() as stack:
            s3 = await stack.enter_async_context(settings.aws.endpoints().aio_client("s3"))
            clients = await open_pipeline_clients(settings, stack)
            dlq = build_dlq(settings, clients)
            make_routes = routes_factory(settings, clients)

            def pipeline_for(shard: ArchiveShard, stream: str) -> ShardPipeline:
                if shard.pipeline is None:
                    shard.pipeline = ShardPipeline(
                        stream,
                        shard.shard_id,
                        make_routes(shard.shard_id),
                        dlq,
                        NoCheckpoints(),
                        decoder=decoder,
                        checkpoint_interval_s=settings.checkpoint_interval_s,
                    )
                return shard.pipeline

            async def replay_objects(shard: ArchiveShard, items: list[ArchiveObject]) -> None:
                for item in items:
                    if stop.is_set() or shard.error:
                        return
                    records = await self._read(s3, item)
                    if not records:
                        continue
                    pipeline = pipeline_for(shard, records[0].stream or self.location.table)
                    try:
                        for batch in batches(records, shard.shard_id):
                            await pipeline.process(batch)
                            shard.records += len(batch.records)
                            shard.at_ms = batch.records[-1].arrival_ms or shard.at_ms
                    except ShardStopped as stopped:
                        log.error(
                            "replay.shard_stopped", shard_id=shard.shard_id, error=str(stopped)
                        )
                        shard.error = str(stopped)

            ticker = asyncio.create_task(self._tick(stop))
            limit = asyncio.Semaphore(SHARD_CONCURRENCY)

            async def limited(shard: ArchiveShard, items: list[ArchiveObject]) -> None:
                async with limit:
                    await replay_objects(shard, items)

            try:
                for hour in by_hour(self.objects):
                    if stop.is_set():
                        break
                    per_shard: dict[str, list[ArchiveObject]] = defaultdict(list)
                    for item in hour:
                        per_shard[item.shard_id].append(item)
                    async with asyncio.TaskGroup() as group:
                        for shard_id, items in per_shard.items():
                            group.create_task(limited(self.totals.shards[shard_id], items))
                for shard in self.totals.shards.values():
                    if shard.pipeline is not None:
                        await shard.pipeline.drain()
                    shard.done = not stop.is_set() and shard.error is None
            finally:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
        state = self.state()
        self._on_state(state)
        local = LocalTotals(skipped_after_to=decoder.skipped.after_to)
        for shard in self.totals.shards.values():
            if shard.pipeline is not None:
                local.add(shard.pipeline)
        complete = all(shard.done for shard in self.totals.shards.values())
        log.info(
            "replay.stopped",
            complete=complete,
            objects=self.totals.objects,
            lines=self.totals.lines,
            duplicates=self.totals.duplicates,
            bad_lines=self.totals.bad_lines,
        )
        return ReplayOutcome(
            complete=complete and not stop.is_set(),
            interrupted=stop.is_set(),
            state=state,
            local=local,
        )

    async def count(self, stop: asyncio.Event) -> DryRun:
        """`--dry-run`: reads the objects and counts what the replay would apply."""
        window = self.request.window
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # records, bytes, changes
        started = time.monotonic()
        self.totals.shards = {item.shard_id: ArchiveShard(item.shard_id) for item in self.objects}
        ticker = asyncio.create_task(self._tick(stop))
        try:
            async with self.settings.aws.endpoints().aio_client("s3") as s3:
                for item in self.objects:
                    if stop.is_set():
                        break
                    records = await self._read(s3, item)
                    tally = counts[item.shard_id]
                    tally[0] += len(records)
                    tally[1] += sum(len(record.data) for record in records)
                    tally[2] += sum(1 for r in records if window.applies(r.created_at_us))
                    shard = self.totals.shards[item.shard_id]
                    shard.records += len(records)
                    if records:
                        shard.at_ms = records[-1].arrival_ms or shard.at_ms
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        for shard in self.totals.shards.values():
            shard.done = not stop.is_set()
        self._on_state(self.state())
        location = self.location
        return DryRun(
            counts=tuple(
                ShardCount(shard_id, frozenset(), c[0], c[1], c[2], "archive")
                for shard_id, c in sorted(counts.items())
            ),
            elapsed_s=time.monotonic() - started,
            description=(
                f"archive s3://{location.bucket}/{location.table_prefix} "
                f"({len(self.objects)} objects in the window)"
            ),
            objects=self.totals.objects,
        )

    async def _read(self, s3: Any, item: ArchiveObject) -> list[ArchivedRecord]:
        """The object's lines that the replay applies: in the window, first copies only."""
        response = await s3.get_object(Bucket=self.location.bucket, Key=item.key)
        async with response["Body"] as body:
            data = await body.read()
        self.totals.objects += 1
        self.totals.bytes += len(data)
        try:
            # Decompression of a multi-MB object would stall every other shard's task.
            records, bad = await asyncio.to_thread(read_object, data)
        except LineFormatError as error:
            log.warning("replay.bad_object", key=item.key, error=str(error))
            self.totals.bad_lines += 1
            return []
        self.totals.lines += len(records) + bad
        self.totals.bad_lines += bad
        window = self.request.window
        kept: list[ArchivedRecord] = []
        for record in records:
            arrival = record.arrival_ms or record.created_at_us // 1000
            if not window.arrived_in(arrival):
                self.totals.outside_window += 1
            elif not self._seen.first_time(record.event_id):
                self.totals.duplicates += 1
            else:
                kept.append(record)
        return kept

    async def _tick(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._on_state(self.state())
            try:
                await asyncio.wait_for(stop.wait(), self._poll_s)
            except TimeoutError:
                continue
