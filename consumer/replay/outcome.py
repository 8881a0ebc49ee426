"""How a replay run ended, for the command line's summary and exit code."""

from __future__ import annotations

from dataclasses import dataclass, field

from consumer.pipeline.processor import ShardPipeline
from consumer.replay.status import ReplayState, stopped_shards


@dataclass
class LocalTotals:
    """This process's own counts (a stream replay's lease table has every worker's records)."""

    records: int = 0
    changes: int = 0
    parked: int = 0
    skipped_after_to: int = 0

    def add(self, pipeline: ShardPipeline) -> None:
        self.records += pipeline.stats.records
        self.changes += pipeline.stats.changes
        self.parked += pipeline.stats.parked


@dataclass
class ReplayOutcome:
    """`complete`: every shard settled; `interrupted`: stopped by a signal before that."""

    complete: bool
    interrupted: bool
    state: ReplayState
    local: LocalTotals = field(default_factory=LocalTotals)
    lease_table_deleted: bool = False

    @property
    def stopped(self) -> dict[str, str]:
        """Shards a pipeline with on_failure = stop stopped, with the reason."""
        return dict(stopped_shards(self.state))

    @property
    def records(self) -> int:
        """Records read (applied, parked or skipped after --to), over all workers and runs."""
        return sum(shard.records for shard in self.state.shards)
