"""The shard loop sees the lease's stop while a batch is being processed (issue 16).

Before, the stop was looked at only between batches, and `ShardPipeline.process` retries a sink
outage for as long as it lasts: a SIGTERM or a planned handoff during an outage waited for the
coordinator's timeout (and ECS's SIGKILL after 30 s). Now:
- a shutdown (SIGTERM) ends the outage's retries: the shard checkpoints only what every sink
  applied (never past the unapplied records: DESIGN.md invariant 1) and returns;
- a handoff keeps waiting for the batch in an outage: abandoning it would give the peer
  duplicates on a planned move (invariant 5);
- a lost lease cancels the batch at once and writes nothing more;
- a batch that is going well when a planned stop comes is finished and checkpointed (no
  duplicates for the next owner: invariant 5).
Real `ShardPipeline`, in-memory sink and checkpointer (tests/pipeline_fakes.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import orjson

from checkpoints import Checkpoint, Lease, LeaseHandle, StopReason
from consumer.pipeline.processor import RetryPolicy, Route, ShardPipeline
from consumer.pipeline.sink import Failures
from consumer.records import ChangeEvent
from consumer.records.batch import RawRecord, ReadBatch
from consumer.service.shard_task import ShardActivity, run_shard
from tests.change_factory import destination_record
from tests.pipeline_fakes import MemoryCheckpointer, MemoryDlq, MemorySink, sink_error
from tests.unit.test_replay_shard_task import ScriptedReader, TableWrites

SHARD = "shardId-000000000000"
# The pipeline's default backoff (0.2 s doubling to 20 s): an outage is retried for as long as
# it lasts, so only the stop can end the shard's task within the bound below.
RETURN_BOUND_S = 1.0


class SlowSink(MemorySink):
    """A healthy sink whose writes take `delay_s` (a batch in flight when the stop comes)."""

    delay_s: float = 0.3
    writing: bool = False

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        self.writing = True
        await asyncio.sleep(self.delay_s)
        return await super().write(events)


def batch(*sequence_numbers: int) -> ReadBatch:
    records = [
        RawRecord(
            orjson.dumps(destination_record("INSERT", f"k{n}", n * 1000, new={"n": {"N": str(n)}})),
            str(n),
            n,
            "pk",
        )
        for n in sequence_numbers
    ]
    return ReadBatch(SHARD, records, 1_000, records[-1].sequence_number)


def outage_from(first_failing: int) -> Callable[[Sequence[ChangeEvent], int], Exception | None]:
    """A sink that applies records before `first_failing` and is down (retryable) from there."""

    def fail(events: Sequence[ChangeEvent], call: int) -> Exception | None:
        failing = any(int(e.position.sequence_number) >= first_failing for e in events)
        return sink_error(retryable=True) if failing else None

    return fail


async def start(
    sink: MemorySink,
    batches: Sequence[ReadBatch],
    checkpoint_interval_s: float = 0,
    dlq: MemoryDlq | None = None,
) -> tuple[asyncio.Task[None], LeaseHandle, MemoryCheckpointer]:
    lease = Lease(SHARD, SHARD, owner="me", counter=1, checkpoint=Checkpoint.trim_horizon())
    handle = LeaseHandle(lease, "me", 1, TableWrites())  # its stop signal; no writes
    checkpointer = MemoryCheckpointer()

    def make_pipeline(handle: LeaseHandle) -> ShardPipeline:
        return ShardPipeline(
            "stream",
            SHARD,
            [Route(sink, policy=RetryPolicy(max_attempts=-1))],
            dlq or MemoryDlq(),
            checkpointer,
            checkpoint_interval_s=checkpoint_interval_s,
        )

    task = asyncio.create_task(
        run_shard(handle, ScriptedReader(batches), make_pipeline, ShardActivity())
    )
    return task, handle, checkpointer


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("not reached within 5 s")


async def stopped_within(task: asyncio.Task[None], bound_s: float) -> float:
    started = time.monotonic()
    async with asyncio.timeout(5):  # a hang fails the test instead of holding the suite
        await asyncio.wait({task}, timeout=bound_s)
        elapsed = time.monotonic() - started
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    return elapsed


async def test_sigterm_during_a_sink_outage_returns_at_once_checkpointed_before_it() -> None:
    sink = MemorySink(fail=outage_from(3))
    task, handle, checkpointer = await start(sink, [batch(1, 2), batch(3, 4)])
    await until(lambda: sink.calls >= 3)  # batch 1 applied, batch 2 retried in the outage
    handle.request_stop(StopReason.SHUTDOWN)
    elapsed = await stopped_within(task, RETURN_BOUND_S)
    assert elapsed < RETURN_BOUND_S, f"the shard task took {elapsed:.1f}s to stop"
    assert task.done() and not task.cancelled() and task.exception() is None
    # Records 3 and 4 were never applied: the checkpoint stays at 2 (at least once).
    assert checkpointer.checkpoints == [("2", 0)]
    assert len(sink.state) == 2


async def test_a_handoff_during_an_outage_waits_for_the_batch_then_hands_it_over_whole() -> None:
    """A handoff is a planned move: the peer must get no duplicates (invariant 5), so a batch
    partly applied when the outage began is finished, not abandoned (the chaos run counted 14
    duplicates on planned moves when handoffs abandoned it). The peer could not apply through
    the outage either."""
    down = True

    def outage(events: Sequence[ChangeEvent], call: int) -> Exception | None:
        return sink_error(retryable=True) if down and call > 1 else None

    sink = MemorySink(fail=outage)
    task, handle, checkpointer = await start(sink, [batch(1, 2), batch(3, 4)])
    await until(lambda: sink.calls >= 3)
    handle.request_stop(StopReason.HANDOFF)
    await asyncio.sleep(0.5)
    assert not task.done(), "a handoff abandoned a batch in an outage"
    down = False
    await stopped_within(task, 5.0)
    assert len(sink.state) == 4
    assert checkpointer.checkpoints[-1] == ("4", 0)


async def test_a_lost_lease_during_an_outage_cancels_the_batch_and_writes_nothing() -> None:
    sink = MemorySink(fail=outage_from(3))
    task, handle, checkpointer = await start(sink, [batch(1, 2), batch(3, 4)])
    await until(lambda: sink.calls >= 3)
    handle.request_stop(StopReason.LOST)
    assert await stopped_within(task, 0.2) < 0.2
    calls = sink.calls
    await asyncio.sleep(0.3)
    assert sink.calls == calls
    assert checkpointer.checkpoints == [("2", 0)]


async def test_a_drain_during_a_flush_outage_returns_without_checkpointing_the_buffer() -> None:
    class FlushDown(MemorySink):
        async def flush(self) -> None:
            raise sink_error(retryable=True)

    sink = FlushDown(buffered=True)  # an audit-like sink: applied only once flushed
    task, handle, checkpointer = await start(sink, [batch(1, 2)])
    await until(lambda: len(sink.pending) == 2)
    handle.request_stop(StopReason.SHUTDOWN)
    assert await stopped_within(task, RETURN_BOUND_S) < RETURN_BOUND_S
    assert checkpointer.checkpoints == []  # buffered, never flushed: not checkpointed


async def test_a_planned_stop_finishes_a_healthy_batch_in_flight_and_checkpoints_it() -> None:
    sink = SlowSink()
    task, handle, checkpointer = await start(sink, [batch(1, 2)], checkpoint_interval_s=3600)
    await until(lambda: sink.writing)
    handle.request_stop(StopReason.HANDOFF)
    assert sink.calls == 0  # the stop came while the batch's write was in flight
    assert await stopped_within(task, RETURN_BOUND_S) < RETURN_BOUND_S
    assert len(sink.state) == 2  # not cancelled: the next owner gets no duplicates
    assert checkpointer.checkpoints == [("2", 0)]


async def test_a_stop_while_the_dlq_is_down_leaves_the_unparked_record_behind_checkpoint() -> None:
    def reject_3(events: Sequence[ChangeEvent], call: int) -> Failures:
        rejected = [i for i, e in enumerate(events) if e.position.sequence_number == "3"]
        return {i: sink_error(retryable=False) for i in rejected}

    dlq = MemoryDlq(outages=10**6)  # the queue is unreachable for as long as the test runs
    sink = MemorySink(fail=reject_3)
    task, handle, checkpointer = await start(sink, [batch(1, 2), batch(3, 4)], dlq=dlq)
    await until(lambda: dlq.outages < 10**6 - 1)  # record 3 rejected, its parking retried
    handle.request_stop(StopReason.SHUTDOWN)
    assert await stopped_within(task, RETURN_BOUND_S) < RETURN_BOUND_S
    assert dlq.parked == []
    assert checkpointer.checkpoints == [("2", 0)]  # not past 3: neither applied nor parked
