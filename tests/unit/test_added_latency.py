"""The consumer's own latency (issue 19.4): from a batch being read to its apply per sink."""

from __future__ import annotations

import orjson

from consumer.pipeline.added_latency import LatencyHistogram
from consumer.pipeline.processor import Route, ShardPipeline
from consumer.records.batch import RawRecord, ReadBatch
from tests.change_factory import destination_record
from tests.pipeline_fakes import MemoryCheckpointer, MemoryDlq, MemorySink


def test_percentiles_are_weighted_by_records_and_within_a_bucket() -> None:
    histogram = LatencyHistogram()
    histogram.add(0.002, records=99)
    histogram.add(0.5, records=1)
    p50, p99, p100 = (histogram.percentile_ms(q) for q in (50, 99, 100))
    assert p50 is not None and 2.0 <= p50 <= 2.0 * 1.08
    assert p99 is not None and 2.0 <= p99 <= 2.0 * 1.08  # 99 of 100 records waited 2 ms
    assert p100 is not None and 500 <= p100 <= 500 * 1.08
    assert LatencyHistogram().percentile_ms(99) is None


async def test_a_pipeline_measures_read_to_apply_per_sink() -> None:
    now = [100.0]
    sink = MemorySink(name="replication")
    pipeline = ShardPipeline(
        "stream",
        "shardId-0",
        [Route(sink)],
        MemoryDlq(),
        MemoryCheckpointer(),
        clock=lambda: now[0],
    )
    records = [
        RawRecord(
            orjson.dumps(
                destination_record(
                    "INSERT", f"k{n}", 1_700_000_000_000_000 + n, new={"v": {"N": "1"}}
                )
            ),
            f"{n:056d}",
            1_700_000_000_000,
            "p",
        )
        for n in range(1, 4)
    ]
    now[0] = 100.25  # read at 100.0, applied 250 ms later
    await pipeline.process(
        ReadBatch("shardId-0", records, 0, records[-1].sequence_number, read_at=100.0)
    )
    histogram = pipeline.added_latency.by_sink["replication"]
    assert histogram.total == 3
    p50 = histogram.percentile_ms(50)
    assert p50 is not None and 250 <= p50 <= 250 * 1.08
