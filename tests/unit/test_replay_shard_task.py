"""One shard of a stream replay: nothing after the cut-off is applied, the shard is drained and
marked done for --to, and the lease is held idle until a stop (not finished, not released);
SHARD_END finishes it; a pipeline that stops marks it stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import orjson

from checkpoints import Checkpoint, Lease, LeaseHandle, StopReason
from consumer.pipeline.decoders import decode_kinesis
from consumer.pipeline.processor import OnFailure, RetryPolicy, Route, ShardPipeline
from consumer.records.batch import RawRecord, ReadBatch
from consumer.replay.shard_task import replay_shard
from consumer.replay.status import DONE_TO_MS, END, ERROR, RECORDS, ReplayMarks
from consumer.replay.window import ChangeTimeFilter, ReplayWindow
from consumer.sources.model import StartPosition
from tests.change_factory import destination_record
from tests.pipeline_fakes import MemoryDlq, MemorySink, sink_error

SHARD = "shardId-000000000000"
WINDOW = ReplayWindow(from_ms=0, to_ms=1_000, grace_ms=100)  # cut-off at arrival 1100


class ScriptedReader:
    """Yields the given batches, then waits like a reader at the tip would (forever)."""

    def __init__(self, batches: Sequence[ReadBatch]) -> None:
        self.batches = batches
        self.closed = False

    async def read(self, shard_id: str, start: StartPosition) -> AsyncIterator[ReadBatch]:
        try:
            for batch in self.batches:
                yield batch
                if batch.shard_end:
                    return
            await asyncio.Event().wait()
        finally:
            self.closed = True


class TableWrites:
    """The lease table (checkpoints) and the replay marks' DynamoDB client, in memory."""

    def __init__(self) -> None:
        self.checkpoints: list[Checkpoint] = []
        self.finished: tuple[str, ...] | None = None
        self.updates: list[dict[str, Any]] = []

    async def checkpoint(self, key: str, me: str, token: int, checkpoint: Checkpoint) -> None:
        self.checkpoints.append(checkpoint)

    async def prepare_checkpoint(
        self, key: str, me: str, token: int, checkpoint: Checkpoint
    ) -> None:
        return None

    async def finish_shard(
        self, key: str, me: str, token: int, child_shard_ids: Iterable[str] = ()
    ) -> None:
        self.finished = tuple(child_shard_ids)

    async def update_item(self, **request: Any) -> dict[str, Any]:
        self.updates.append(request)
        return {}

    def marked(self, attribute: str) -> list[Any]:
        found = []
        for update in self.updates:
            names = {v: k for k, v in update["ExpressionAttributeNames"].items()}
            if attribute in names:
                value = update["ExpressionAttributeValues"][":" + names[attribute][1:]]
                found.append(next(iter(value.values())))
        return found


def record(n: int, arrival_ms: int, created_ms: int | None = None) -> RawRecord:
    created_us = (arrival_ms if created_ms is None else created_ms) * 1000
    data = orjson.dumps(destination_record("INSERT", f"k{n}", created_us, new={"n": {"N": str(n)}}))
    return RawRecord(data, str(n), arrival_ms, "pk")


def batch(
    *records: RawRecord, behind: int = 5_000, children: tuple[str, ...] | None = None
) -> ReadBatch:
    resume = records[-1].sequence_number if records else None
    return ReadBatch(SHARD, list(records), behind, resume, children)


async def run(
    batches: Sequence[ReadBatch],
    sink: MemorySink,
    policy: RetryPolicy | None = None,
    settled: Callable[[TableWrites], bool] = lambda table: False,
) -> tuple[asyncio.Task[None], LeaseHandle, TableWrites, ScriptedReader]:
    """Starts the shard task; returns once the shard ended (or `settled` says so)."""
    table = TableWrites()
    lease = Lease(SHARD, SHARD, owner="me", counter=1, checkpoint=Checkpoint.at_timestamp(0))
    handle = LeaseHandle(lease, "me", 1, table)
    reader = ScriptedReader(batches)

    def make_pipeline(handle: LeaseHandle) -> ShardPipeline:
        return ShardPipeline(
            "stream",
            SHARD,
            [Route(sink, policy=policy or RetryPolicy())],
            MemoryDlq(),
            handle,
            decoder=ChangeTimeFilter(decode_kinesis, WINDOW),
            checkpoint_interval_s=3600,
        )

    task = asyncio.create_task(
        replay_shard(handle, reader, make_pipeline, ReplayMarks(table, "leases"), WINDOW)
    )
    for _ in range(200):
        if table.marked(END) or table.finished is not None or task.done() or settled(table):
            break
        await asyncio.sleep(0.01)
    return task, handle, table, reader


async def test_the_shard_stops_at_the_cutoff_is_marked_done_and_holds_its_lease() -> None:
    sink = MemorySink()
    task, handle, table, reader = await run(
        [
            batch(record(1, 100), record(2, 900)),
            # made before --to, arrived in the grace span: applied; made after --to: skipped;
            # arrived after the cut-off: ends the shard, and nothing from there on is applied
            batch(record(3, 1050, created_ms=990), record(4, 1060), record(5, 1200)),
            batch(record(6, 1300)),
        ],
        sink,
    )
    assert sorted(event.keys.wire["pk"]["S"] for event in sink.state.values()) == [
        "k1",
        "k2",
        "k3",
    ]
    assert table.checkpoints[-1] == Checkpoint.after("4")  # drained: everything read is done
    assert table.marked(END) == ["reached-to"] and table.marked(DONE_TO_MS) == ["1000"]
    assert sum(int(n) for n in table.marked(RECORDS)) == 4
    assert table.finished is None  # not SHARD_END: the shard is not finished
    await asyncio.sleep(0.05)
    assert not task.done() and reader.closed  # holds the lease, reads no more
    handle.request_stop(StopReason.SHUTDOWN)
    await asyncio.wait_for(task, 1)


async def test_the_tip_ends_the_shard_for_this_replay() -> None:
    task, handle, table, _ = await run([batch(record(1, 100)), batch(behind=0)], MemorySink())
    assert table.marked(END) == ["tip"]
    handle.request_stop(StopReason.SHUTDOWN)
    await asyncio.wait_for(task, 1)


async def test_shard_end_within_the_window_finishes_the_shard_and_returns() -> None:
    task, _, table, _ = await run(
        [batch(record(1, 100), record(2, 200), children=("child-1", "child-2"))], MemorySink()
    )
    await asyncio.wait_for(task, 1)
    assert table.finished == ("child-1", "child-2")
    assert table.marked(END) == []  # the SHARD_END checkpoint settles it, never a mark
    assert table.marked(RECORDS) == ["2"]


async def test_a_pipeline_that_stops_marks_the_shard_stopped() -> None:
    def refuse(events: Sequence[Any], call: int) -> BaseException:
        return ValueError("poison")

    stop = RetryPolicy(max_attempts=1, on_failure=OnFailure.STOP, backoff_base_s=0.001)
    task, handle, table, _ = await run([batch(record(1, 100))], MemorySink(fail=refuse), stop)
    assert table.marked(END) == ["stopped"]
    # The error's type and position, never its text (it may quote item values).
    assert "ValueError" in table.marked(ERROR)[0] and "poison" not in table.marked(ERROR)[0]
    assert table.marked(DONE_TO_MS) == []
    handle.request_stop(StopReason.SHUTDOWN)
    await asyncio.wait_for(task, 1)


async def test_a_lost_lease_writes_nothing_more() -> None:
    sink = MemorySink()
    task, handle, table, _ = await run(
        [batch(record(1, 100))], sink, settled=lambda table: bool(sink.state)
    )
    handle.request_stop(StopReason.LOST)
    await asyncio.wait_for(task, 1)
    assert table.checkpoints == [] and table.marked(END) == []


async def test_a_stop_during_a_sink_outage_returns_at_once_with_nothing_marked() -> None:
    """Issue 16: the stop is seen while a batch waits out an outage (before, the replay's
    shard retried it until the coordinator's timeout)."""
    sink = MemorySink(fail=lambda events, call: sink_error(retryable=True))
    task, handle, table, _ = await run(
        [batch(record(1, 100))], sink, settled=lambda table: sink.calls >= 2
    )
    handle.request_stop(StopReason.SHUTDOWN)
    await asyncio.wait_for(task, 1)
    assert table.checkpoints == [] and table.marked(END) == [] and not sink.state
