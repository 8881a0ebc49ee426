"""What every shard reader hands the pipelines: raw records in batches, as Kinesis stored them.

Here, below both `sources/` (which produce them) and `pipeline/` (which consume them), so the
pipelines do not depend on any reader. Decoding is the pipeline's job and happens only for what
a sink needs.
"""

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
    """Records read from one shard in one call or event.

    `resume_after` is the sequence number to resume after (the last record's, or the EFO
    continuation number, which advances even when no record came). `child_shard_ids` is set
    only on the last batch of a closed shard (SHARD_END). `read_at` is when its bytes were
    read (monotonic seconds; set by the readers), for the consumer's own added latency.
    """

    shard_id: str
    records: Sequence[RawRecord]
    millis_behind_latest: int | None
    resume_after: str | None
    child_shard_ids: tuple[str, ...] | None = None
    read_at: float | None = None

    @property
    def shard_end(self) -> bool:
        return self.child_shard_ids is not None
