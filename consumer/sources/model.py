"""The shard reader contract: where a shard is read from, the reader protocol and its errors.

Readers hand over `consumer.records.batch.ReadBatch`es of records as Kinesis stored them and
nothing more: decoding is the pipeline's job and happens only for what a sink needs.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from consumer.records.batch import ReadBatch


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
        sequence_kinds = (StartKind.AT_SEQUENCE_NUMBER, StartKind.AFTER_SEQUENCE_NUMBER)
        if self.kind in sequence_kinds and not self.sequence_number:
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

    def iterator_args(
        self, kind: str = "ShardIteratorType", sequence: str = "StartingSequenceNumber"
    ) -> dict[str, object]:
        """The GetShardIterator arguments (with the defaults) or, named by SubscribeToShard's
        StartingPosition, its fields."""
        args: dict[str, object] = {kind: self.kind.value}
        if self.sequence_number is not None:
            args[sequence] = self.sequence_number
        if self.timestamp is not None:
            args["Timestamp"] = self.timestamp
        return args


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
