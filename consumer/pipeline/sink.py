"""The sink contract: what every pipeline destination (audit, search, replication) implements.

A sink receives the changes of one shard in shard order, batch by batch. It must be
idempotent and converge despite duplicates and disorder (DESIGN.md invariant 2): for every item
key it keeps the newest change by `ChangeEvent.version` (ApproximateCreationDateTime in
microseconds), changes of equal version ordered by their images
(`consumer.records.ordering`, `consumer.pipeline.newest`), never lets an older or duplicate
change overwrite newer state, and never lets a late INSERT or MODIFY resurrect an item whose
newer delete it has seen (deletes leave a versioned tombstone).

Failures are reported, never swallowed:
- `write` returns the per-record failures it could identify, by index into the batch it was
  given. A `SinkError` with `retryable=False` (the record itself is bad: too large, rejected by
  a mapping, refused by a transform) is parked in the dead-letter queue without further attempts;
  a retryable one is retried with backoff.
- `write` raises when the whole batch failed (the destination is unreachable, throttling that
  outlasted its own retries, a bug). The pipeline retries, and bisects the batch to isolate a
  poison record when errors persist.

Collapsing: a sink that writes only the newest change per item key of a batch (replication,
search) says so with `collapses_per_key = True`, and reports a non-retryable failure only for
the change whose write failed. The pipeline then delivers the changes that failed one
superseded again, without it, so the newest change that can be applied is applied and only the
bad record is parked. Retryable failures may be reported for every change of the key.

Durability: when `write` returns, every record not reported as failed is either durably applied,
or (for a buffering sink, `buffered = True`, which implements `FlushingSink`) accepted into the
sink's buffer. Accepted records become durable when `flush` returns. The pipeline never
checkpoints past a record that is not durable in every sink or parked in the dead-letter queue;
it calls `flush` when `wants_flush` says so, before every checkpoint, and before a lease is
handed off or the worker stops. Unbuffered sinks have no `flush` at all.
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
