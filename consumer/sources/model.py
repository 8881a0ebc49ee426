"""What every shard reader produces: batches of raw records from a start position.

Readers hand over records as Kinesis stored them (the payload bytes and their position) and
nothing more: decoding is the pipeline's job and happens only for what a sink needs.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class StartKind(enum.StrEnum):
    TRIM_HORIZON = "TRIM_HORIZON"
    LATEST = "LATEST"
    AT_TIMESTAMP = "AT_TIMESTAMP"
    AT_SEQUENCE_NUMBER = "AT_SEQUENCE_NUMBER"
    AFTER_SEQUENCE_NUMBER = "AFTER_SEQUENCE_NUMBER"


@dataclass(frozen=True, slots=True)
class StartPosition:
    """Where a shard is read from. AFTER_SEQUENCE_NUMBER is how a checkpoint resumes."""

    kind: StartKind
    sequence_number: str | None = None
    timestamp: datetime | None = None

    def __post_init__(self) -> None:
        needs_sequence = self.kind in (
            StartKind.AT_SEQUENCE_NUMBER,
            StartKind.AFTER_SEQUENCE_NUMBER,
        )
        if needs_sequence and not self.sequence_number:
            raise ValueError(f"{self.kind} needs a sequence number")
        if self.kind is StartKind.AT_TIMESTAMP and self.timestamp is None:
            raise ValueError("AT_TIMESTAMP needs a timestamp")

    @classmethod
    def trim_horizon(cls) -> StartPosition:
        return cls(StartKind.TRIM_HORIZON)

    @classmethod
    def latest(cls) -> StartPosition:
        return cls(StartKind.LATEST)

    @classmethod
    def after(cls, sequence_number: str) -> StartPosition:
        return cls(StartKind.AFTER_SEQUENCE_NUMBER, sequence_number=sequence_number)

    @classmethod
    def at_timestamp(cls, timestamp: datetime) -> StartPosition:
        return cls(StartKind.AT_TIMESTAMP, timestamp=timestamp)

    def iterator_args(self) -> dict[str, object]:
        """The GetShardIterator / SubscribeToShard StartingPosition arguments."""
        args: dict[str, object] = {"ShardIteratorType": self.kind.value}
        if self.sequence_number is not None:
            args["StartingSequenceNumber"] = self.sequence_number
        if self.timestamp is not None:
            args["Timestamp"] = self.timestamp
        return args

    def subscribe_args(self) -> dict[str, object]:
        args: dict[str, object] = {"Type": self.kind.value}
        if self.sequence_number is not None:
            args["SequenceNumber"] = self.sequence_number
        if self.timestamp is not None:
            args["Timestamp"] = self.timestamp
        return args


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
    read (monotonic seconds; set by the read-ahead), for the consumer's own added latency.
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


class ShardReader(Protocol):
    """Reads one shard from a start position, batch by batch.

    Contract: records come in shard order, none skipped or repeated within one call of
    `read`, also across the reader's internal reconnects and renewals. The iterator ends
    after the batch whose `shard_end` is true; it never ends otherwise unless the caller stops
    iterating. Transient errors (throttling, timeouts, resets) are retried inside; errors the
    reader cannot recover from (the shard or stream is gone, access denied) are raised as
    ReaderError subclasses.
    """

    def read(self, shard_id: str, start: StartPosition) -> AsyncIterator[ReadBatch]: ...


class ReaderError(RuntimeError):
    """A reader cannot go on with this shard."""


class ShardGoneError(ReaderError):
    """The shard or stream no longer exists (ResourceNotFoundException)."""


class EfoUnavailableError(ReaderError):
    """Enhanced fan-out cannot be used (access denied or the consumer limit is reached)."""
