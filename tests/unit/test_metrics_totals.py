"""Counters are totals since start: a shard that ends or is handed off keeps its counts.

Issue 16: `take_snapshot` summed live pipelines only, so `*_total` fell when a shard was let go
and the EMF `ParkedRecords` delta went negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from consumer.pipeline.processor import PipelineStats, ShardPipeline
from consumer.service.worker import WorkerState
from consumer.telemetry.metrics import emf_line, take_snapshot


@dataclass
class StatsOnly:
    stats: PipelineStats


def stats(parked: int, seconds: float) -> PipelineStats:
    return PipelineStats(
        records=10,
        changes=9,
        parked=parked,
        retries=1,
        checkpoints=2,
        last_change_age_ms=50,
        sink_seconds={"search": seconds},
        sink_failures={"search": 1},
        sink_waits={"replication": 3},
    )


def test_letting_a_shard_go_keeps_its_counts() -> None:
    first, second = StatsOnly(stats(2, 0.5)), StatsOnly(stats(3, 0.25))
    pipelines = cast(dict[str, ShardPipeline], {"shard-1": first, "shard-2": second})
    state = WorkerState(pipelines=pipelines)
    before = take_snapshot(state)
    state.retired_stats.merge(pipelines.pop("shard-1").stats)  # as Worker does when it ends
    after = take_snapshot(state)
    assert after == before
    assert after.parked_total == 5 and after.changes_total == 18
    assert after.sink_seconds_total == {"search": 0.75}
    assert after.sink_waits_total == {"replication": 6}
    line = emf_line("ns", "app", 0, after, before, 60.0)
    assert b'"ParkedRecords":0' in line


def test_merging_adds_every_count() -> None:
    total = PipelineStats()
    total.merge(stats(2, 0.5))
    total.merge(stats(1, 1.0))
    assert (total.records, total.changes, total.parked, total.retries) == (20, 18, 3, 2)
    assert total.checkpoints == 4 and total.last_change_age_ms == 50
    assert total.sink_seconds == {"search": 1.5} and total.sink_failures == {"search": 2}
