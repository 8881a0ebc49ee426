"""The shard pipeline's contract: checkpoints never pass unapplied records, poison records are
isolated by bisection and parked, outages block without loss, filters and policies apply."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
import pytest

from consumer.pipeline.filters import RecordFilter
from consumer.pipeline.processor import (
    OnFailure,
    RetryPolicy,
    Route,
    ShardPipeline,
    ShardStopped,
)
from consumer.pipeline.sink import Failures, SinkError
from consumer.records import ChangeEvent
from consumer.records.batch import RawRecord, ReadBatch
from tests.change_factory import destination_record
from tests.pipeline_fakes import MemoryCheckpointer, MemoryDlq, MemorySink, sink_error

SHARD = "shardId-000000000000"
FAST = RetryPolicy(backoff_base_s=0.001, backoff_cap_s=0.002)


def batch(
    start: int,
    count: int,
    bad: Sequence[int] = (),
    end: bool = False,
    arrival_ms: int = 0,
    event_name: str = "MODIFY",
) -> ReadBatch:
    records = []
    for n in range(start, start + count):
        if n in bad:
            data = b"{not json"
        else:
            data = orjson.dumps(
                destination_record(
                    event_name,
                    f"k{n % 7}",
                    1_000 + n,
                    new={"n": {"N": str(n)}},
                    old={"n": {"N": "0"}},
                )
            )
        records.append(RawRecord(data, str(n), arrival_ms, "pk"))
    return ReadBatch(
        SHARD, records, 0, str(start + count - 1), child_shard_ids=("child",) if end else None
    )


def pipeline(
    sinks: Sequence[MemorySink | Route],
    dlq: MemoryDlq | None = None,
    policy: RetryPolicy = FAST,
    **kwargs: object,
) -> tuple[ShardPipeline, MemoryDlq, MemoryCheckpointer]:
    dlq = dlq or MemoryDlq()
    checkpointer = MemoryCheckpointer()
    routes = [s if isinstance(s, Route) else Route(s, policy=policy) for s in sinks]
    return (
        ShardPipeline(
            "stream",
            SHARD,
            routes,
            dlq,
            checkpointer,
            checkpoint_interval_s=0,
            outage_backoff_base_s=0.001,
            **kwargs,
        ),
        dlq,
        checkpointer,
    )


async def test_every_sink_gets_every_change_and_the_checkpoint_follows() -> None:
    a, b = MemorySink("a"), MemorySink("b")
    shard, dlq, checkpoints = pipeline([a, b])
    await shard.process(batch(0, 10))
    await shard.process(batch(10, 5))
    assert len(a.applied) == len(b.applied) == 15
    assert checkpoints.checkpoints == [("9", 0), ("14", 0)]
    assert dlq.parked == []


async def test_a_poison_record_is_isolated_by_bisection_and_parked() -> None:
    def poison(events: Sequence[ChangeEvent], call: int) -> BaseException | None:
        if any(e.position.sequence_number == "6" for e in events):
            return RuntimeError("cannot apply record 6")
        return None

    sink = MemorySink("replication", fail=poison)
    shard, dlq, checkpoints = pipeline([sink])
    await shard.process(batch(0, 16))
    assert [p.sequence_number for p in dlq.parked] == ["6"]
    parked = dlq.parked[0]
    assert parked.pipeline == "replication"
    assert parked.error_type == "RuntimeError"
    assert "record 6" in parked.error
    assert parked.attempts == FAST.max_attempts
    assert orjson.loads(parked.raw)["eventName"] == "MODIFY"
    assert len(sink.applied) == 15
    assert checkpoints.checkpoints == [("15", 0)]


async def test_without_bisection_the_whole_failing_batch_is_parked_after_max_attempts() -> None:
    sink = MemorySink(fail=lambda events, call: RuntimeError("bad batch"))
    policy = RetryPolicy(max_attempts=2, bisect=False, backoff_base_s=0.001, backoff_cap_s=0.001)
    shard, dlq, _ = pipeline([sink], policy=policy)
    await shard.process(batch(0, 4))
    assert len(dlq.parked) == 4
    assert sink.calls == 2


async def test_rejected_records_are_parked_at_once_and_retryable_ones_retried() -> None:
    def per_record(events: Sequence[ChangeEvent], call: int) -> Failures | None:
        failures: dict[int, SinkError] = {}
        for index, event in enumerate(events):
            n = int(event.position.sequence_number)
            if n == 2:
                failures[index] = sink_error(retryable=False)
            elif n == 3 and call < 3:
                failures[index] = sink_error(retryable=True)
        return failures

    sink = MemorySink(fail=per_record)
    shard, dlq, checkpoints = pipeline([sink])
    await shard.process(batch(0, 5))
    assert [p.sequence_number for p in dlq.parked] == ["2"]
    assert sorted(sink.applied) == sorted(set(sink.applied))
    assert len(sink.applied) == 4
    assert sink.calls == 3
    assert checkpoints.checkpoints == [("4", 0)]


async def test_a_sink_outage_blocks_the_checkpoint_and_loses_nothing() -> None:
    outage = {"on": True}
    retried = asyncio.Event()

    def down(events: Sequence[ChangeEvent], call: int) -> BaseException | None:
        if call > 3:
            retried.set()
        return SinkError("connection refused", retryable=True) if outage["on"] else None

    sink = MemorySink(fail=down)
    shard, dlq, checkpoints = pipeline([sink])
    task = asyncio.create_task(shard.process(batch(0, 5)))
    await asyncio.wait_for(retried.wait(), 5)  # retried through the outage, however slow
    assert not task.done()
    assert checkpoints.checkpoints == []
    outage["on"] = False
    await asyncio.wait_for(task, 5)
    assert len(sink.applied) == 5
    assert dlq.parked == []
    assert checkpoints.checkpoints == [("4", 0)]


async def test_records_older_than_max_age_are_parked_not_retried() -> None:
    sink = MemorySink(fail=lambda events, call: SinkError("down", retryable=True))
    policy = RetryPolicy(max_record_age_s=60, backoff_base_s=0.001, backoff_cap_s=0.001)
    shard, dlq, checkpoints = pipeline([sink], policy=policy, wall_clock_ms=lambda: 1_000_000)
    await shard.process(batch(0, 3, arrival_ms=1_000_000 - 61_000))
    assert len(dlq.parked) == 3
    assert "max_record_age_s" in dlq.parked[0].error
    assert checkpoints.checkpoints == [("2", 0)]


async def test_on_failure_stop_stops_the_shard_before_the_record() -> None:
    sink = MemorySink(
        fail=lambda events, call: {0: sink_error(retryable=False)} if call == 2 else None
    )
    policy = RetryPolicy(on_failure=OnFailure.STOP, backoff_base_s=0.001, backoff_cap_s=0.001)
    shard, dlq, checkpoints = pipeline([sink], policy=policy)
    await shard.process(batch(0, 2))
    with pytest.raises(ShardStopped, match="on_failure=stop"):
        await shard.process(batch(2, 3))
    assert dlq.parked == []
    assert checkpoints.checkpoints == [("1", 0)]


async def test_undecodable_records_go_to_the_dlq_and_the_shard_moves_on() -> None:
    sink = MemorySink()
    shard, dlq, checkpoints = pipeline([sink])
    await shard.process(batch(0, 6, bad=[1, 4]))
    assert [(p.pipeline, p.sequence_number) for p in dlq.parked] == [
        ("decode", "1"),
        ("decode", "4"),
    ]
    assert dlq.parked[0].raw == b"{not json"
    assert len(sink.applied) == 4
    assert checkpoints.checkpoints == [("5", 0)]


async def test_a_dlq_outage_blocks_until_the_records_are_parked() -> None:
    dlq = MemoryDlq(outages=3)
    shard, _, checkpoints = pipeline([MemorySink()], dlq=dlq)
    await shard.process(batch(0, 3, bad=[1]))
    assert [p.sequence_number for p in dlq.parked] == ["1"]
    assert checkpoints.checkpoints == [("2", 0)]


async def test_filters_select_per_pipeline_and_skipped_records_still_checkpoint() -> None:
    inserts_only = MemorySink("search")
    everything = MemorySink("audit")
    routes = [
        Route(inserts_only, RecordFilter([{"eventName": ["INSERT"]}]), FAST),
        Route(everything, policy=FAST),
    ]
    shard, _, checkpoints = pipeline(routes)
    await shard.process(batch(0, 4, event_name="MODIFY"))
    await shard.process(batch(4, 2, event_name="INSERT"))
    assert len(inserts_only.applied) == 2
    assert len(everything.applied) == 6
    assert checkpoints.checkpoints == [("3", 0), ("5", 0)]


async def test_a_buffered_sink_holds_the_checkpoint_until_it_has_flushed() -> None:
    audit = MemorySink("audit", buffered=True)
    replica = MemorySink("replication")
    shard, _, checkpoints = pipeline([audit, replica])
    await shard.process(batch(0, 5))
    assert checkpoints.checkpoints == []  # audit has not flushed yet
    audit.flush_due = True
    audit.flush_errors.append(RuntimeError("S3 down"))
    await shard.process(batch(5, 5))
    assert audit.flushes == 1
    assert len(audit.applied) == 10
    assert checkpoints.checkpoints == [("9", 0)]


async def test_drain_and_shard_end_flush_and_checkpoint() -> None:
    audit = MemorySink("audit", buffered=True)
    shard, _, checkpoints = pipeline([audit])
    await shard.process(batch(0, 3))
    await shard.drain()
    assert checkpoints.checkpoints == [("2", 0)]
    await shard.process(batch(3, 2, end=True))
    assert checkpoints.shard_end
    assert len(audit.applied) == 5


def test_invalid_policies_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="max_record_age_s"):
        RetryPolicy(max_record_age_s=0.5)


async def test_backoff_grows_while_writes_make_no_progress_and_warnings_are_capped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 21.3: a write that returns only retryable failures is no progress, so the next
    sleep must be longer (it was reset to the first step after every such write)."""
    from consumer.aws.backoff import Backoff
    from consumer.pipeline.processor import Route, ShardPipeline
    from tests.change_factory import upsert
    from tests.pipeline_fakes import MemoryCheckpointer, MemoryDlq, MemorySink, sink_error

    ceilings: list[float] = []

    async def no_sleep(self: Backoff) -> None:
        ceilings.append(min(self.cap_s, self.base_s * 2**self.attempts))
        self.attempts += 1

    monkeypatch.setattr(Backoff, "sleep", no_sleep)
    throttled = 6
    sink = MemorySink(
        fail=lambda events, call: (
            {i: sink_error(retryable=True) for i in range(len(events))} if call <= throttled
            else None
        )
    )
    pipeline = ShardPipeline("s", "shard-0", [Route(sink)], MemoryDlq(), MemoryCheckpointer())
    await pipeline._deliver(Route(sink), [upsert("a", 1, 1), upsert("b", 2, 1)])
    assert len(ceilings) == throttled
    assert ceilings == sorted(ceilings) and ceilings[-1] >= 8 * ceilings[0]
    assert len(sink.state) == 2
    assert capsys.readouterr().out.count("sink.records_retry") == 1  # one line per interval
