"""The records of one (shard, table) waiting to be written, cut into objects. Pure: no I/O.

Each segment becomes one object. A new segment starts when the partition hour changes or the
byte or record limit would be passed: cuts that depend only on the records, so a replay from
the same first record cuts the same objects up to its first flush (`seal` cuts wherever the
buffer stands).

Dropped as duplicates: a delivery already buffered, and a record at or below the highest
position written (`flushed_through`; records come in shard order, so it is durable already),
which would otherwise rewrite an object with fewer records than it holds. The mark lives as
long as the sink instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from consumer.pipeline.audit.layout import ObjectLayout, partition_hour
from consumer.pipeline.audit.settings import AuditSection
from consumer.records import ChangeEvent

# (event_id, sequence_number, sub_sequence_number): one delivery of one change.
Identity: TypeAlias = tuple[str, str, int]
# (sequence number, sub-sequence number) as integers: shard order.
SequenceKey: TypeAlias = tuple[int, int]


@dataclass(eq=False)
class Segment:
    """The lines of one future object. Sealed segments take no more lines, so a failed write
    is retried with exactly the same key and body."""

    key: str
    hour: int
    first_accepted_at: float
    lines: list[bytes] = field(default_factory=list)
    identities: set[Identity] = field(default_factory=set)
    size: int = 0
    records: int = 0
    last_sequence: SequenceKey | None = None
    sealed: bool = False
    body: bytes | None = None  # the gzip body, once made (then `lines` is released)

    def add(self, line: bytes, identity: Identity, sequence: SequenceKey | None) -> None:
        self.lines.append(line)
        self.identities.add(identity)
        self.size += len(line)
        self.records += 1
        if sequence is not None and (self.last_sequence is None or sequence > self.last_sequence):
            self.last_sequence = sequence

    def text(self) -> bytes:
        """The NDJSON text of a sealed segment."""
        if not self.sealed:
            raise RuntimeError("only a sealed segment is written")
        return b"".join(self.lines)

    def keep_body(self, body: bytes) -> None:
        """Keeps the gzip body for every later attempt and releases the lines it holds."""
        self.body = body
        self.lines = []


@dataclass(eq=False)
class ShardBuffer:
    """Pending audit lines of one table's changes in one shard. `settings` give the limits."""

    table: str
    layout: ObjectLayout
    settings: AuditSection
    segments: list[Segment] = field(default_factory=list)
    flushed_through: SequenceKey | None = None

    def accept(self, event: ChangeEvent, line: bytes, now: float) -> None:
        """Buffers the event's line, unless it is a duplicate."""
        position = event.position
        identity = (event.event_id, position.sequence_number, position.sub_sequence_number)
        try:
            sequence: SequenceKey | None = position.sequence_key
        except ValueError:
            sequence = None  # not a decimal sequence number
        if (
            sequence is not None
            and self.flushed_through is not None
            and sequence <= self.flushed_through
        ):
            return
        if any(identity in segment.identities for segment in self.segments):
            return
        hour = partition_hour(event)
        segment = self.segments[-1] if self.segments else None
        if (
            segment is None
            or segment.sealed
            or segment.hour != hour
            or segment.records >= self.settings.max_records
            or segment.size + len(line) > self.settings.max_bytes
        ):
            segment = Segment(
                self.layout.object_key(self.table, hour, position, event.event_id), hour, now
            )
            self.segments.append(segment)
        segment.add(line, identity, sequence)

    @property
    def pending_records(self) -> int:
        return sum(segment.records for segment in self.segments)

    def due(self, now: float) -> bool:
        """Full (bytes or records), or its oldest record has waited `max_age_s`."""
        segments = self.segments
        settings = self.settings
        return bool(segments) and (
            sum(segment.size for segment in segments) >= settings.max_bytes
            or self.pending_records >= settings.max_records
            or now - min(segment.first_accepted_at for segment in segments) >= settings.max_age_s
        )

    def seal(self) -> list[Segment]:
        """Closes every segment for writing and returns them, oldest first. Lines accepted
        from now on start new segments."""
        for segment in self.segments:
            segment.sealed = True
        return list(self.segments)

    def written(self, segment: Segment) -> None:
        """`segment` is durable: forget it, and remember how far this buffer is written."""
        self.segments.remove(segment)
        last = segment.last_sequence
        if last is not None and (self.flushed_through is None or last > self.flushed_through):
            self.flushed_through = last
