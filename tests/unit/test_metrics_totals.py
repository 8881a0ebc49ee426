"""Counters are totals since start: a shard that ends or is handed off keeps its counts.

Issue 16: `take_snapshot` summed live pipelines only, so `*_total` fell when a shard was let go
and the EMF `ParkedRecords` delta went negative.
"""

from __future__ import annotations

from consumer.pipeline.processor import PipelineStats, ShardPipeline
from consumer.records.batch import RawRecord, ReadBatch
from consumer.service.worker import WorkerState
from consumer.telemetry.metrics import emf_line, take_snapshot
from tests.pipeline_fakes import MemoryCheckpointer, MemoryDlq

NOT_A_CHANGE = RawRecord(b"not a change record", "1", 0, "k")


def pipeline_of(state: WorkerState, shard_id: str) -> ShardPipeline:
    """A shard pipeline as the worker builds it: it adds into the worker's registry."""
    registry = state.metrics
    pipeline = ShardPipeline(
        "stream",
        shard_id,
        [],
        MemoryDlq(),
        MemoryCheckpointer(),
        stats=registry.pipelines,
        added_latency=registry.added_latency,
    )
    state.pipelines[shard_id] = pipeline
    return pipeline


async def test_letting_a_shard_go_keeps_its_counts() -> None:
    state = WorkerState()
    first, second = pipeline_of(state, "shard-1"), pipeline_of(state, "shard-2")
    await first.process(ReadBatch("shard-1", [NOT_A_CHANGE] * 2, 0, "1"))
    await second.process(ReadBatch("shard-2", [NOT_A_CHANGE] * 3, 0, "1"))
    before = take_snapshot(state.metrics)
    assert before.parked_total == 5  # undecodable: parked
    del state.pipelines["shard-1"]  # as the worker does when a shard ends or moves
    after = take_snapshot(state.metrics)
    assert after == before
    line = emf_line("ns", "app", 0, after, before, 60.0)
    assert b'"ParkedRecords":0' in line
    await second.process(ReadBatch("shard-2", [NOT_A_CHANGE], 0, "1"))
    assert take_snapshot(state.metrics).parked_total == 6


def test_the_registry_reads_the_shard_counts_of_the_worker() -> None:
    state = WorkerState()
    state.activity.records = 7
    state.activity.millis_behind["shard-1"] = 1500
    snapshot = take_snapshot(state.metrics)
    assert snapshot.records_total == 7
    assert snapshot.millis_behind_latest == {"shard-1": 1500}


def test_a_pipeline_without_a_registry_keeps_its_own_counts() -> None:
    pipeline = ShardPipeline("stream", "shard-1", [], MemoryDlq(), MemoryCheckpointer())
    assert pipeline.stats == PipelineStats()
