"""One leased shard: read, apply, checkpoint, and stop the way the lease asks. This is the one
shard loop, of the service and of a stream replay, whose `ShardLoopPolicy` adds the window's
cut-off, progress marks and holding the lease when done (consumer/replay/shard_task.py).

- HANDOFF / SHUTDOWN (a planned move or SIGTERM): stop reading, finish the in-flight batch,
  flush and checkpoint (`drain`), return. The next owner starts right after: no duplicates.
  A batch waiting out a failing sink or DLQ stops waiting (`ShardPipeline.stop_waiting`) and
  is left unfinished: the drain checkpoints only what was applied, the shard returns at once.
- LOST (another worker owns it now, or our heartbeat lapsed): stop at once, mid-batch too (it
  is cancelled), write nothing.
- SHARD_END: the pipeline flushes and checkpoints SHARD_END, which releases the children.
- DESTINATION GONE (a sink's table, bucket, index or queue missing past the bound): stop
  without a checkpoint past what was not applied, and give the lease to another worker
  (`relinquish`), which may be configured correctly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import structlog

from checkpoints import Checkpoint, LeaseHandle, LeaseLost, Position, StopReason
from consumer.pipeline.missing_destination import DestinationGone
from consumer.pipeline.processor import OutageAbandoned, ShardPipeline, ShardStopped
from consumer.records.batch import ReadBatch
from consumer.service.startup_heap import freeze_startup_heap
from consumer.settings import StreamSection
from consumer.sources.budget import ByteBudget, default_worker_budget, memory_limit_bytes
from consumer.sources.model import ShardReader, StartPosition
from consumer.sources.prefetch import (
    STOPPED,
    ReadAheadLimits,
    Stopped,
    prefetch,
    unless_stopped,
)

log = structlog.get_logger(__name__)


def start_position(checkpoint: Checkpoint) -> StartPosition:
    """Where to read a shard from, given its lease's checkpoint."""
    if checkpoint.position is Position.TRIM_HORIZON:
        return StartPosition.trim_horizon()
    if checkpoint.position is Position.LATEST:
        return StartPosition.latest()
    if checkpoint.position is Position.AT_TIMESTAMP:
        assert checkpoint.timestamp_ms is not None
        return StartPosition.at_timestamp(
            datetime.fromtimestamp(checkpoint.timestamp_ms / 1000, UTC)
        )
    if checkpoint.sequence_number is None:
        raise ValueError(f"checkpoint {checkpoint} has no sequence number to resume after")
    # The pipeline checkpoints whole Kinesis records: a sub-sequence number is that of the
    # aggregate's last user record, so reading resumes after the whole aggregate.
    return StartPosition.after(checkpoint.sequence_number)


@dataclass
class ShardActivity:
    """When each shard last saw records; burst mode stops when all are idle long enough."""

    last_record_at: dict[str, float] = field(default_factory=dict)
    last_batch_at: dict[str, float] = field(default_factory=dict)
    started_at: dict[str, float] = field(default_factory=dict)
    millis_behind: dict[str, int] = field(default_factory=dict)
    records: int = 0
    # Shards stopped by a record that could not be applied nor parked: shard -> why.
    stopped: dict[str, str] = field(default_factory=dict)
    # Leases given up because a destination was missing past the bound (a metric).
    destinations_gone: int = 0

    def saw(self, batch: ReadBatch, now: float) -> None:
        self.last_batch_at[batch.shard_id] = now
        if batch.records:
            self.last_record_at[batch.shard_id] = now
            self.records += len(batch.records)
        if batch.millis_behind_latest is not None:
            self.millis_behind[batch.shard_id] = batch.millis_behind_latest

    def forget(self, shard_id: str) -> None:
        self.millis_behind.pop(shard_id, None)
        self.stopped.pop(shard_id, None)


PipelineFactory = Callable[[LeaseHandle], ShardPipeline]
# Gives a lease up without a checkpoint (the coordinator's `relinquish` with a cool-down).
Relinquish = Callable[[LeaseHandle], Awaitable[object]]


def read_ahead_limits(stream: StreamSection) -> ReadAheadLimits:
    """The worker's read-ahead budgets from its settings (one worker budget for all shards)."""
    worker_bytes = stream.read_ahead_bytes_per_worker or default_worker_budget(
        memory_limit_bytes()
    )
    return ReadAheadLimits(stream.read_ahead_bytes_per_shard, ByteBudget(worker_bytes))


async def stamped(
    batches: AsyncIterator[ReadBatch], clock: Callable[[], float]
) -> AsyncGenerator[ReadBatch, None]:
    """Each batch with the time it was read: the reader's own stamp (polling and EFO stamp it
    when the bytes are off the socket; the batch is passed on as it is), else now, as the
    reader hands it over (the added latency's start)."""
    try:
        async for batch in batches:
            yield batch if batch.read_at is not None else replace(batch, read_at=clock())
    finally:
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()


def payload_bytes(batch: ReadBatch) -> int:
    """What a batch weighs against the read-ahead budgets: its records' payload."""
    return sum(len(record.data) for record in batch.records)


class ShardLoopPolicy:
    """What a shard's run does besides reading, applying and checkpointing. This default is the
    service's: every batch applied whole, the lease given back only when the loop returns."""

    async def admit(self, batch: ReadBatch) -> ReadBatch:
        """The part of a batch just read to apply: all of it, or what comes before a cut-off."""
        return batch

    async def applied(self, batch: ReadBatch, pipeline: ShardPipeline) -> bool:
        """After `batch` (as admitted) is applied. True: the shard is done for this run: read no
        more and hold the lease idle until a stop (returning would start the shard again)."""
        return False

    async def drained(self) -> None:
        """After the drain of a planned stop (not after a lost lease)."""

    async def stopped_on_failure(self, stopped: ShardStopped) -> None:
        """A pipeline cannot apply a record (on_failure = stop); the lease is then held at it."""


async def run_shard(
    handle: LeaseHandle,
    reader: ShardReader,
    make_pipeline: PipelineFactory,
    activity: ShardActivity,
    read_ahead_batches: int = 2,
    clock: Callable[[], float] = time.monotonic,
    limits: ReadAheadLimits | None = None,
    relinquish: Relinquish | None = None,
    policy: ShardLoopPolicy | None = None,
) -> None:
    """Processes one leased shard until it ends, the lease asks it to stop, `policy` says it is
    done for this run, or a destination is gone (then `relinquish` gives the lease up; without
    it DestinationGone propagates)."""
    policy = policy or ShardLoopPolicy()
    bound = log.bind(shard_id=handle.shard_id)
    freeze_startup_heap()  # once per process: full collections stalled every shard ~100 ms
    pipeline = make_pipeline(handle)
    start = start_position(handle.start_position)
    bound.info("shard.start", start=str(start.kind), sequence_number=start.sequence_number)
    activity.started_at[handle.shard_id] = clock()
    batches: AsyncGenerator[ReadBatch, None] = prefetch(
        stamped(reader.read(handle.shard_id, start), clock),
        read_ahead_batches,
        size=payload_bytes,
        limits=limits,
    )
    stop = asyncio.ensure_future(handle.wait_stop())
    lost = asyncio.ensure_future(handle.lost.wait())

    # A shutdown ends any wait for a failing sink or DLQ, so the drain is prompt (the process
    # is going away). A handoff keeps waiting: abandoning a batch that is partly applied would
    # give the peer duplicates on a planned move (invariant 5), and the peer could not apply
    # through the outage either.
    def abandon_waits_on_shutdown(stop: asyncio.Future[StopReason]) -> None:
        if not stop.cancelled() and stop.result() is StopReason.SHUTDOWN:
            pipeline.stop_waiting()

    stop.add_done_callback(abandon_waits_on_shutdown)
    try:
        while True:
            try:
                batch = await unless_stopped(anext(batches), stop)
            except StopAsyncIteration:
                bound.info("shard.reader_ended")
                return
            if isinstance(batch, Stopped):
                break
            activity.saw(batch, clock())
            batch = await policy.admit(batch)
            # LOST cancels the batch at once; a planned stop lets a healthy batch finish (no
            # duplicates for the next owner) but leaves one waiting out an outage unfinished.
            try:
                if await unless_stopped(pipeline.process(batch), lost) is STOPPED:
                    break
            except OutageAbandoned:
                break
            if await policy.applied(batch, pipeline):
                await batches.aclose()  # hold the lease idle, reading nothing, until a stop
                await stop
                return
            if batch.shard_end:
                bound.info("shard.end", children=list(batch.child_shard_ids or ()))
                return
        reason = await stop  # done, or about to be: a lost lease is also a stop
        if reason is not StopReason.LOST:
            await pipeline.drain()
            await policy.drained()
        bound.info("shard.stopped", reason=str(reason))
    except LeaseLost:
        bound.warning("shard.lease_lost")
    except DestinationGone as gone:
        if relinquish is None:
            raise
        # Nothing past the last checkpoint is written: the next owner re-delivers from there.
        bound.error(
            "shard.destination_gone",
            sink=gone.sink,
            code=gone.code,
            missing_for_s=round(gone.missing_for_s, 1),
            reason=str(gone),
        )
        activity.destinations_gone += 1
        await batches.aclose()
        await relinquish(handle)
    except ShardStopped as stopped:
        # As a Lambda mapping without a destination: the shard waits at this record (its
        # lease held, nothing read past it) until an operator acts; readiness reports it.
        bound.error("shard.stopped_on_failure", reason=str(stopped))
        activity.stopped[handle.shard_id] = str(stopped)
        await policy.stopped_on_failure(stopped)
        await batches.aclose()
        await stop
    finally:
        stop.cancel()
        lost.cancel()
        activity.forget(handle.shard_id)
        try:
            await batches.aclose()
        finally:
            await pipeline.aclose()

