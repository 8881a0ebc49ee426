"""The measuring sink: it changes nothing about the sink it wraps, and reports each probe once
per sink, when it became durable (after `write`, or after `flush` for a buffered sink)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from consumer.compare.latency.observer import MeasuringSink, ProbeObserver
from consumer.compare.latency.probes import Phase, ProbeTag, probe_attributes
from consumer.pipeline.filters import RecordFilter
from consumer.pipeline.processor import OnFailure, RetryPolicy, Route
from consumer.pipeline.sink import Failures, SinkError
from consumer.records import ChangeEvent
from tests.change_factory import change
from tests.pipeline_fakes import MemorySink

TAG = ProbeTag("r", "polling", Phase.MEASURE)


class Ticks:
    """A wall clock in microseconds that moves only when told."""

    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def probe(
    seq: int,
    written_us: int = 500_000,
    arrival_ms: int | None = 900,
    shard_id: str = "shardId-000000000000",
    tag: ProbeTag = TAG,
) -> ChangeEvent:
    return change(
        "INSERT",
        f"p{seq}",
        written_us + 10,
        new=probe_attributes(tag, seq, written_us),
        arrival_ms=arrival_ms,
        shard_id=shard_id,
    )


def ordinary(key: str) -> ChangeEvent:
    return change("INSERT", key, 1, new={"status": {"S": "NEW"}})


def test_an_unbuffered_sink_applies_a_probe_when_write_returns() -> None:
    clock = Ticks()
    observer = ProbeObserver(clock)
    inner = MemorySink(name="replication")
    sink = MeasuringSink(inner, observer)
    events = [ordinary("a"), probe(0), probe(1)]
    clock.now = 2_000_000
    assert asyncio.run(sink.write(events)) == {}
    assert len(inner.applied) == 3  # everything reached the real sink
    applied = observer.applied(str(TAG), "replication")
    assert sorted(applied) == [0, 1]
    assert applied[0].applied_us == 2_000_000
    assert applied[0].stamp.written_us == 500_000
    assert applied[0].arrival_ms == 900
    assert applied[0].shard_id == "shardId-000000000000"


def test_failed_records_are_not_applied_and_their_retry_is() -> None:
    clock = Ticks()
    observer = ProbeObserver(clock)
    failure = SinkError("throttled", retryable=True)
    inner = MemorySink(name="search", fail=lambda events, call: {1: failure} if call == 1 else None)
    sink = MeasuringSink(inner, observer)
    events = [probe(0), probe(1)]
    assert asyncio.run(sink.write(events)) == {1: failure}
    assert sorted(observer.applied(str(TAG), "search")) == [0]
    clock.now = 3_000_000
    asyncio.run(sink.write([events[1]]))
    assert observer.applied(str(TAG), "search")[1].applied_us == 3_000_000


def test_a_buffered_sink_applies_probes_when_flush_returns() -> None:
    clock = Ticks()
    observer = ProbeObserver(clock)
    inner = MemorySink(name="audit", buffered=True)
    sink = MeasuringSink(inner, observer)
    assert sink.buffered
    asyncio.run(sink.write([probe(0)]))
    assert observer.applied(str(TAG), "audit") == {}
    inner.flush_errors.append(RuntimeError("S3 down"))
    clock.now = 4_000_000
    with pytest.raises(RuntimeError, match="S3 down"):
        asyncio.run(sink.flush())
    assert observer.applied(str(TAG), "audit") == {}  # not durable yet
    clock.now = 5_000_000
    asyncio.run(sink.flush())
    assert observer.applied(str(TAG), "audit")[0].applied_us == 5_000_000


def test_a_duplicate_delivery_keeps_the_first_apply() -> None:
    clock = Ticks()
    observer = ProbeObserver(clock)
    sink = MeasuringSink(MemorySink(name="replication"), observer)
    asyncio.run(sink.write([probe(0)]))
    clock.now = 9_000_000
    asyncio.run(sink.write([probe(0)]))
    assert observer.applied(str(TAG), "replication")[0].applied_us == 1_000_000


class Recording:
    """A sink that records what reached it, to show the wrapper passes everything through."""

    name = "recording"
    buffered = False

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        self.calls.append(f"write {len(events)}")
        return {}

    def wants_flush(self, now_monotonic: float) -> bool:
        self.calls.append(f"wants_flush {now_monotonic:g}")
        return True

    async def flush(self) -> None:
        self.calls.append("flush")

    async def aclose(self) -> None:
        self.calls.append("aclose")


def test_the_wrapper_delegates_every_call() -> None:
    inner = Recording()
    sink = MeasuringSink(inner, ProbeObserver())
    assert sink.name == "recording"

    async def use() -> None:
        await sink.write([ordinary("a")])
        assert sink.wants_flush(5.0)
        await sink.flush()
        await sink.aclose()

    asyncio.run(use())
    assert inner.calls == ["write 1", "wants_flush 5", "flush", "aclose"]


def test_wrapping_routes_keeps_filters_and_policies_and_learns_the_sinks() -> None:
    observer = ProbeObserver()
    policy = RetryPolicy(max_attempts=5, on_failure=OnFailure.STOP)
    record_filter = RecordFilter([{"eventName": ["INSERT"]}])
    routes = [
        Route(MemorySink(name="replication"), record_filter, policy),
        Route(MemorySink(name="search")),
    ]
    wrapped = observer.wrap_routes("shardId-0", routes)
    assert [type(route.sink) for route in wrapped] == [MeasuringSink, MeasuringSink]
    assert wrapped[0].record_filter is record_filter and wrapped[0].policy is policy
    observer.wrap_routes("shardId-1", routes)
    assert observer.sinks == ["replication", "search"]


def test_complete_means_every_sink_applied_every_probe() -> None:
    observer = ProbeObserver()
    assert not observer.complete(str(TAG))  # no routes built yet
    replication = MemorySink(name="replication")
    search = MemorySink(name="search")
    wrapped = observer.wrap_routes("s", [Route(replication), Route(search)])
    asyncio.run(wrapped[0].sink.write([probe(0), probe(1)]))
    assert not observer.complete(str(TAG))
    asyncio.run(wrapped[1].sink.write([probe(1)]))
    assert observer.complete(str(TAG))  # at least one each
    assert not observer.complete(str(TAG), 2)
    asyncio.run(wrapped[1].sink.write([probe(0)]))
    assert observer.complete(str(TAG), 2)


def test_wait_until_reports_a_timeout() -> None:
    observer = ProbeObserver()
    assert asyncio.run(observer.wait_until(lambda: True, 0.01))
    assert not asyncio.run(observer.wait_until(lambda: False, 0.05, poll_s=0.01))


def test_warm_up_coverage_needs_every_sink_to_apply_a_probe_from_every_shard() -> None:
    observer = ProbeObserver()
    warmup = ProbeTag("r", "efo", Phase.WARMUP)
    shards = frozenset({"shardId-1", "shardId-2"})
    assert not observer.covered(str(warmup), shards)
    first, second = observer.wrap_routes(
        "shardId-1", [Route(MemorySink(name="a")), Route(MemorySink(name="b"))]
    )
    asyncio.run(first.sink.write([probe(0, shard_id="shardId-1", tag=warmup)]))
    asyncio.run(second.sink.write([probe(0, shard_id="shardId-1", tag=warmup)]))
    assert observer.covered(str(warmup), frozenset())  # no shards known: any probe will do
    assert not observer.covered(str(warmup), shards)
    asyncio.run(first.sink.write([probe(1, shard_id="shardId-2", tag=warmup)]))
    assert not observer.covered(str(warmup), shards)  # sink b has not read shard 2 yet
    asyncio.run(second.sink.write([probe(1, shard_id="shardId-2", tag=warmup)]))
    assert observer.covered(str(warmup), shards)
    assert not observer.covered(str(TAG), shards)  # another tag
