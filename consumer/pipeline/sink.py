"""The sink contract: what every pipeline destination (audit, search, replication) implements.

A sink receives one shard's changes in shard order, batch by batch. It is idempotent and
converges despite duplicates and disorder (DESIGN.md invariant 2): per item key it keeps the
newest change by `ChangeEvent.version`, equal versions ordered by their images
(`consumer.pipeline.newest`), and deletes leave a versioned tombstone so a late change cannot
resurrect the item.

Failures are reported, never swallowed: `write` returns per-record failures by index into its
batch (a `SinkError` with `retryable=False` is parked without further attempts; a retryable
one is retried), and raises when the whole batch failed (the pipeline retries, and bisects to
isolate a poison record when errors persist).

Collapsing (`collapses_per_key = True`: only the newest change per key of a batch is written):
a non-retryable failure is reported only for the change whose write failed, and the pipeline
delivers the changes it superseded again without it. Retryable failures may name them all.

Durability: when `write` returns, every record not reported failed is durably applied, or,
for a buffering sink (`buffered = True`, a `FlushingSink`), accepted into its buffer and
durable once `flush` returns. The pipeline calls `flush` when `wants_flush` says so, before
every checkpoint and before a handoff or stop. Unbuffered sinks have no `flush` at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, cast

from consumer.records import ChangeEvent

# Per-record failures of one `write`, by index into the batch.
Failures = Mapping[int, "SinkError"]

NO_FAILURES: Failures = {}


class SinkError(Exception):
    """A record (or batch) a sink could not apply. `retryable` says whether trying the same
    record again may succeed (throttling, 5xx, a timeout) or not (the record is bad)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Sink(Protocol):
    """A pipeline destination. Constructors do no I/O; `aclose` releases connections."""

    @property
    def name(self) -> str:
        """Short, stable name: "audit", "search", "replication" (used in metrics and the DLQ)."""
        ...

    @property
    def buffered(self) -> bool:
        """True if accepted records become durable only at `flush` (a `FlushingSink`)."""
        ...

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        """Apply (or accept) `events`, in order; return the records that failed, by index."""
        ...

    async def aclose(self) -> None: ...


class FlushingSink(Sink, Protocol):
    """A buffering sink (`buffered` is True): accepted records become durable at `flush`."""

    def wants_flush(self, now_monotonic: float) -> bool:
        """True when the buffer is full or its oldest record has waited long enough."""
        ...

    async def flush(self) -> None:
        """Make every accepted record durable. Raises if that failed; nothing is then lost:
        the records stay buffered and the next `flush` retries them."""
        ...


def flushing(sink: Sink) -> FlushingSink | None:
    """The sink's flush capability: itself if it buffers, else None (nothing to flush)."""
    return cast(FlushingSink, sink) if sink.buffered else None
