"""`consumer compare latency`'s consumer_added_ms: per probe and sink, from the moment the
consumer read the probe's batch (the reader's hand-over, stamped by the shard task) to the
sink's apply; for a buffered sink, to the flush that made it durable."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from consumer.compare.latency.observer import Applied, MeasuringSink, ProbeObserver
from consumer.compare.latency.percentiles import Summary
from consumer.compare.latency.probes import Phase, ProbeStamp, ProbeTag, probe_attributes
from consumer.compare.latency.report import ConsumerBasis, sink_latency
from consumer.pipeline.added_latency import BATCH_READ_AT
from consumer.pipeline.processor import Route, ShardPipeline
from consumer.pipeline.sink import Failures
from consumer.records import ChangeEvent
from consumer.records.batch import RawRecord, ReadBatch
from tests.change_factory import destination_record
from tests.pipeline_fakes import MemoryCheckpointer, MemoryDlq, MemorySink
from tests.unit.test_latency_observer import Ticks, probe

TAG = ProbeTag("r", "polling", Phase.MEASURE)
SHARD = "shardId-000000000000"


def probe_record(seq: int) -> RawRecord:
    new = probe_attributes(TAG, seq, 500_000)
    data = orjson.dumps(destination_record("INSERT", f"p{seq}", 500_010 + seq, new=new))
    return RawRecord(data, f"{seq:056d}", 900, "pk")


class SlowSink(MemorySink):
    """Applies after the test's monotonic clock moved on by `takes_s`."""

    def __init__(self, name: str, now: list[float], takes_s: float) -> None:
        super().__init__(name=name)
        self._now = now
        self._takes_s = takes_s

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        self._now[0] += self._takes_s
        return await super().write(events)


async def test_the_pipeline_hands_each_sink_the_batch_read_time_and_each_apply_is_timed() -> None:
    now = [100.0]
    observer = ProbeObserver(Ticks(), monotonic=lambda: now[0])
    routes = observer.wrap_routes(SHARD, [Route(SlowSink("replication", now, 0.030))])
    pipeline = ShardPipeline("stream", SHARD, routes, MemoryDlq(), MemoryCheckpointer())
    records = [probe_record(0), probe_record(1)]
    now[0] = 100.004  # read at 100.0; decoding took 4 ms, the sink 30 ms
    await pipeline.process(ReadBatch(SHARD, records, 0, records[-1].sequence_number, read_at=100.0))
    applies = observer.applied(str(TAG), "replication")
    assert sorted(applies) == [0, 1]
    for applied in applies.values():
        assert applied.read_to_apply_ms is not None
        assert abs(applied.read_to_apply_ms - 34.0) < 1e-6


async def test_a_buffered_sink_counts_until_its_flush_from_each_probes_own_batch() -> None:
    now = [10.0]
    observer = ProbeObserver(Ticks(), monotonic=lambda: now[0])
    sink = MeasuringSink(MemorySink(name="audit", buffered=True), observer)
    token = BATCH_READ_AT.set(9.0)
    try:
        await sink.write([probe(0)])
        BATCH_READ_AT.set(9.5)
        await sink.write([probe(1)])
    finally:
        BATCH_READ_AT.reset(token)
    assert observer.applied(str(TAG), "audit") == {}  # not durable before the flush
    now[0] = 11.0
    await sink.flush()
    applies = observer.applied(str(TAG), "audit")
    assert applies[0].read_to_apply_ms == 2000.0 and applies[1].read_to_apply_ms == 1500.0


async def test_outside_a_pipeline_delivery_no_read_time_is_claimed() -> None:
    observer = ProbeObserver(Ticks())
    sink = MeasuringSink(MemorySink(name="search"), observer)
    await sink.write([probe(0)])
    assert observer.applied(str(TAG), "search")[0].read_to_apply_ms is None


def test_the_report_summarises_consumer_added_per_sink() -> None:
    def applied(seq: int, added_ms: float | None) -> Applied:
        stamp = ProbeStamp(str(TAG), seq, 1_000_000)
        return Applied("search", stamp, 1_300_000, SHARD, 1_100, added_ms)

    applies = {0: applied(0, 3.5), 1: applied(1, 12.0), 2: applied(2, None)}
    result = sink_latency("search", applies, 3, ConsumerBasis.KINESIS_ARRIVAL)
    assert result.consumer_added == Summary(n=2, p50=3.5, p90=12.0, p99=12.0, max=12.0)
    assert result.end_to_end is not None and result.end_to_end.n == 3
    assert sink_latency("search", {}, 3, ConsumerBasis.WRITE).consumer_added is None
