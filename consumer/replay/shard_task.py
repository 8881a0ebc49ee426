"""One leased shard of a stream replay: the service's shard loop (`service.shard_task.run_shard`)
with the replay's window as its policy. At the cut-off or the tip the pipeline drains, the
shard is marked done for this `--to`, and the loop then *holds* the lease idle until asked to
stop (returning would make the coordinator restart it, releasing it would let another worker
read it again). Progress goes to the lease item every few seconds; a pipeline with
`on_failure = stop` marks the shard stopped (the replay fails) instead of restarting forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from checkpoints import LeaseHandle
from consumer.aws.backoff import Backoff
from consumer.pipeline.processor import ShardPipeline, ShardStopped
from consumer.records.batch import ReadBatch
from consumer.replay.status import STOPPED, ReplayMarks
from consumer.replay.window import ReplayWindow, ShardEnd, cut_batch
from consumer.service.shard_task import PipelineFactory, ShardActivity, ShardLoopPolicy, run_shard
from consumer.sources.model import ShardReader

log = structlog.get_logger(__name__)

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


@dataclass
class ReplayPolicy(ShardLoopPolicy):
    """The shard loop's policy for a stream replay (see the module docstring)."""

    progress: ShardProgressWriter
    window: ReplayWindow
    end: ShardEnd | None = None  # why the shard ends after the batch being applied, if it does

    async def admit(self, batch: ReadBatch) -> ReadBatch:
        cut = cut_batch(batch, self.window.cutoff_ms)
        self.end = cut.end
        self.progress.saw(cut.batch)
        if cut.end is ShardEnd.SHARD_END:
            # SHARD_END releases the lease, after which no fenced write of ours succeeds; the
            # SHARD_END checkpoint itself is what settles the shard (never a mark before it).
            await self.progress.write_now()
        return cut.batch

    async def applied(self, batch: ReadBatch, pipeline: ShardPipeline) -> bool:
        if self.end is None:
            await self.progress.maybe_write()
            return False
        if self.end is not ShardEnd.SHARD_END:
            await pipeline.drain()
            await self.progress.end(self.end.value, self.window.to_ms)
        end, records = self.end.value, pipeline.stats.records
        log.info("replay.shard_done", shard_id=batch.shard_id, end=end, records=records)
        return self.end is not ShardEnd.SHARD_END

    async def drained(self) -> None:
        await self.progress.maybe_write()

    async def stopped_on_failure(self, stopped: ShardStopped) -> None:
        await self.progress.end(STOPPED, None, error=str(stopped))


async def replay_shard(
    handle: LeaseHandle,
    reader: ShardReader,
    make_pipeline: PipelineFactory,
    marks: ReplayMarks,
    window: ReplayWindow,
    read_ahead_batches: int = 2,
) -> None:
    """Replays one leased shard; returns when asked to stop or at SHARD_END."""
    policy = ReplayPolicy(ShardProgressWriter(marks, handle), window)
    activity = ShardActivity()  # the service's bookkeeping (burst mode, readiness): unused here
    await run_shard(handle, reader, make_pipeline, activity, read_ahead_batches, policy=policy)
