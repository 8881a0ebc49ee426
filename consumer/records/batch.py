"""What every shard reader hands the pipelines: raw records in batches, as Kinesis stored them
(here, below `sources/` and `pipeline/`, so the pipelines depend on no reader)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kinesis record as stored: payload bytes, position and arrival time (epoch ms)."""

    data: bytes
    sequence_number: str
    arrival_ms: int
    partition_key: str


@dataclass(frozen=True, slots=True)
class ReadBatch:
    """Records read from one shard in one call or event: `resume_after` the sequence number
    to resume after (the last record's, or EFO's continuation, which advances without
    records), `child_shard_ids` only on a closed shard's last batch (SHARD_END), `read_at`
    when its bytes were read (monotonic s), for the consumer's own added latency."""

    shard_id: str
    records: Sequence[RawRecord]
    millis_behind_latest: int | None
    resume_after: str | None
    child_shard_ids: tuple[str, ...] | None = None
    read_at: float | None = None

    @property
    def shard_end(self) -> bool:
        return self.child_shard_ids is not None
