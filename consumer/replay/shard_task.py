"""One leased shard of a stream replay: read from the lease's start, apply what the window
allows, and stop at the window's end without finishing the shard.

Like the service's `consumer.service.shard_task.run_shard`, with three differences:
- each batch is cut at the window's cut-off (`cutoff.cut_batch`); at the cut-off or the tip
  the pipeline drains (flush + checkpoint), the shard is marked done for this `--to`
  (`marks.ReplayMarks.mark_end`), and the task then *holds* the lease idle until it is asked to
  stop: returning would make the coordinator restart it, and releasing it would let another
  worker read it again;
- progress (records applied, last arrival time) goes to the lease item every few seconds, so
  every worker and the progress display see every shard;
- a pipeline with `on_failure = stop` marks the shard stopped (the replay fails) instead of
  being restarted forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from checkpoints import LeaseHandle, LeaseLost, StopReason
from consumer.aws.backoff import Backoff
from consumer.pipeline.processor import ShardPipeline, ShardStopped
from consumer.records.batch import ReadBatch
from consumer.replay.status import STOPPED, ReplayMarks
from consumer.replay.window import ReplayWindow, ShardEnd, cut_batch
from consumer.service.shard_task import start_position
from consumer.sources.model import ShardReader
from consumer.sources.prefetch import Stopped, next_unless_stopped, prefetch

log = structlog.get_logger(__name__)

PipelineFactory = Callable[[LeaseHandle], ShardPipeline]
MARK_ATTEMPTS = 10


@dataclass
class ShardProgressWriter:
    """Batches progress writes: at most one per `interval_s` per shard."""

    marks: ReplayMarks
    handle: LeaseHandle
    interval_s: float = 2.0
    clock: Callable[[], float] = time.monotonic
    pending_records: int = 0
    at_ms: int | None = None
    _last_write: float = 0.0

    def saw(self, batch: ReadBatch) -> None:
        if batch.records:
            self.pending_records += len(batch.records)
            self.at_ms = batch.records[-1].arrival_ms

    async def maybe_write(self) -> None:
        if self.clock() - self._last_write >= self.interval_s:
            await self.write_now()

    async def write_now(self) -> None:
        """Best effort: progress is for display, so a failed write is retried next time."""
        if self.pending_records:
            try:
                await self.marks.add_progress(self.handle, self.pending_records, self.at_ms)
            except (ClientError, BotoCoreError) as error:
                log.warning("replay.progress_write_failed", error=str(error))
                return
            self.pending_records = 0
        self._last_write = self.clock()

    async def end(self, end: str, to_ms: int | None, error: str | None = None) -> None:
        """Marks the shard ended, retried: without the mark the replay would never complete.
        (A lease lost meanwhile is not an error: its next owner reads on and marks it.)"""
        backoff = Backoff(base_s=0.2, cap_s=5.0)
        for attempt in range(1, MARK_ATTEMPTS + 1):
            try:
                await self.marks.mark_end(
                    self.handle, end, to_ms, self.pending_records, self.at_ms, error=error
                )
                self.pending_records = 0
                return
            except (ClientError, BotoCoreError) as failure:
                if attempt == MARK_ATTEMPTS:
                    raise
                log.warning("replay.mark_failed", error=str(failure), attempt=attempt)
                await backoff.sleep()


async def replay_shard(
    handle: LeaseHandle,
    reader: ShardReader,
    make_pipeline: PipelineFactory,
    marks: ReplayMarks,
    window: ReplayWindow,
    read_ahead_batches: int = 2,
    progress_interval_s: float = 2.0,
) -> None:
    """Replays one leased shard; returns when asked to stop or at SHARD_END."""
    bound = log.bind(shard_id=handle.shard_id)
    pipeline = make_pipeline(handle)
    progress = ShardProgressWriter(marks, handle, progress_interval_s)
    start = start_position(handle.start_position)
    bound.info("replay.shard_start", start=str(start.kind), sequence_number=start.sequence_number)
    batches: AsyncGenerator[ReadBatch, None] = prefetch(
        reader.read(handle.shard_id, start), read_ahead_batches
    )
    stop = asyncio.ensure_future(handle.wait_stop())
    try:
        if await _read_until_end(handle, batches, pipeline, progress, window, stop):
            await batches.aclose()  # no more reads while the lease sits idle
            await stop  # hold the lease: the shard is done for this replay
            bound.info("replay.shard_released", reason=str(stop.result()))
    except LeaseLost:
        bound.warning("replay.lease_lost")
    finally:
        stop.cancel()
        try:
            await batches.aclose()
        finally:
            await pipeline.aclose()


async def _read_until_end(
    handle: LeaseHandle,
    batches: AsyncGenerator[ReadBatch, None],
    pipeline: ShardPipeline,
    progress: ShardProgressWriter,
    window: ReplayWindow,
    stop: asyncio.Future[StopReason],
) -> bool:
    """Reads and applies batches until the shard ends for this replay. True: hold the lease
    idle (reached the cut-off or the tip, or stopped by a pipeline); False: return (a stop was
    asked for, or SHARD_END released the lease)."""
    bound = log.bind(shard_id=handle.shard_id)
    while True:
        try:
            batch = await next_unless_stopped(batches, stop)
        except StopAsyncIteration:
            bound.info("replay.reader_ended")
            return False
        if isinstance(batch, Stopped):
            if stop.result() is not StopReason.LOST:
                await pipeline.drain()
                await progress.maybe_write()
            return False
        cut = cut_batch(batch, window.cutoff_ms)
        progress.saw(cut.batch)
        if cut.end is ShardEnd.SHARD_END:
            # SHARD_END releases the lease, after which no fenced write of ours succeeds; the
            # SHARD_END checkpoint itself is what settles the shard (never a mark before it).
            await progress.write_now()
        try:
            if cut.batch.records or cut.batch.shard_end:
                await pipeline.process(cut.batch)
        except ShardStopped as stopped:
            bound.error("replay.shard_stopped", error=str(stopped))
            await progress.end(STOPPED, None, error=str(stopped))
            return True  # not finished: hold the lease, read no further
        if cut.end is None:
            await progress.maybe_write()
            continue
        if cut.end is not ShardEnd.SHARD_END:
            await pipeline.drain()
            await progress.end(cut.end.value, window.to_ms)
        bound.info("replay.shard_done", end=cut.end.value, records=pipeline.stats.records)
        return cut.end is not ShardEnd.SHARD_END
