"""The lease model: checkpoints, leases and worker heartbeats, and their DynamoDB items.

Attribute names follow the Java KCL (`Attr`; README's Leases section) so a KCL table can be read
and its checkpoints adopted. Items are in the low-level client format (`{"S": ...}`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

# One DynamoDB attribute value in the low-level format, e.g. {"S": "x"} or {"N": "3"}.
AttributeValue = dict[str, Any]
Item = Mapping[str, AttributeValue]

# Heartbeat items share the table with leases; this prefix cannot be a Kinesis shard id.
WORKER_KEY_PREFIX = "__worker__#"
# Backfill and verify keep their segment leases here too (consumer.snapshot); not shards.
SNAPSHOT_KEY_PREFIX = "__snapshot__#"


class Attr:
    """Attribute names. The first group is KCL's; the rest are ours: `handoffTo` (a worker asked
    for this lease), `checkpointTimestamp` (epoch ms of an AT_TIMESTAMP start), heartbeats'."""

    LEASE_KEY = "leaseKey"
    LEASE_OWNER = "leaseOwner"
    LEASE_COUNTER = "leaseCounter"
    CHECKPOINT = "checkpoint"
    CHECKPOINT_SUB = "checkpointSubSequenceNumber"
    PENDING_CHECKPOINT = "pendingCheckpoint"
    PENDING_CHECKPOINT_SUB = "pendingCheckpointSubSequenceNumber"
    OWNER_SWITCHES = "ownerSwitchesSinceCheckpoint"
    PARENT_SHARD_IDS = "parentShardId"
    CHILD_SHARD_IDS = "childShardIds"
    SHARD_ID = "shardId"  # KCL multi-stream tables only

    HANDOFF_TO = "handoffTo"
    CHECKPOINT_TIMESTAMP = "checkpointTimestamp"
    PENDING_CHECKPOINT_TIMESTAMP = "pendingCheckpointTimestamp"

    WORKER_ID = "workerId"
    HEARTBEAT_COUNTER = "heartbeatCounter"
    FENCED_BY = "fencedBy"
    HEARTBEAT_AT = "heartbeatAt"
    LEASE_COUNT = "leaseCount"


class Position(StrEnum):
    """Where a shard's reading resumes. The sentinel names are KCL's stored values."""

    TRIM_HORIZON = "TRIM_HORIZON"
    LATEST = "LATEST"
    AT_TIMESTAMP = "AT_TIMESTAMP"
    AFTER_SEQUENCE_NUMBER = "AFTER_SEQUENCE_NUMBER"
    SHARD_END = "SHARD_END"


_SENTINELS = {Position.TRIM_HORIZON, Position.LATEST, Position.AT_TIMESTAMP, Position.SHARD_END}


@dataclass(frozen=True)
class Checkpoint:
    """A shard's progress. Build with the class methods, not the constructor.

    Ordering (`is_behind`): any start sentinel < any sequence number < SHARD_END; sequence
    numbers compare as integers, then by sub-sequence number (aggregated records).
    """

    position: Position
    sequence_number: str | None = None
    sub_sequence_number: int = 0
    timestamp_ms: int | None = None

    @classmethod
    def trim_horizon(cls) -> Checkpoint:
        return cls(Position.TRIM_HORIZON)

    @classmethod
    def latest(cls) -> Checkpoint:
        return cls(Position.LATEST)

    @classmethod
    def at_timestamp(cls, when: datetime | int) -> Checkpoint:
        """`when` is an aware datetime or epoch milliseconds (Kinesis arrival time)."""
        if isinstance(when, datetime):
            if when.tzinfo is None:
                raise ValueError("AT_TIMESTAMP needs a timezone-aware datetime")
            when = round(when.timestamp() * 1000)
        return cls(Position.AT_TIMESTAMP, timestamp_ms=when)

    @classmethod
    def after(cls, sequence_number: str, sub_sequence_number: int = 0) -> Checkpoint:
        if not sequence_number.isdigit():
            raise ValueError(f"not a Kinesis sequence number: {sequence_number!r}")
        if sub_sequence_number < 0:
            raise ValueError("sub_sequence_number must be >= 0")
        return cls(Position.AFTER_SEQUENCE_NUMBER, sequence_number, sub_sequence_number)

    @classmethod
    def shard_end(cls) -> Checkpoint:
        return cls(Position.SHARD_END)

    @property
    def is_shard_end(self) -> bool:
        return self.position is Position.SHARD_END

    @property
    def timestamp(self) -> datetime | None:
        if self.timestamp_ms is None:
            return None
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)

    def sort_key(self) -> tuple[int, int, int]:
        if self.position is Position.AFTER_SEQUENCE_NUMBER:
            assert self.sequence_number is not None
            return (1, int(self.sequence_number), self.sub_sequence_number)
        if self.position is Position.SHARD_END:
            return (2, 0, 0)
        return (0, 0, 0)

    def is_behind(self, other: Checkpoint) -> bool:
        """True when moving from `other` to `self` would move the checkpoint back."""
        return self.sort_key() < other.sort_key()

    @property
    def stored_value(self) -> str:
        """The `checkpoint` attribute: a sequence number or a sentinel name."""
        if self.position is Position.AFTER_SEQUENCE_NUMBER:
            assert self.sequence_number is not None
            return self.sequence_number
        return self.position.value

    @classmethod
    def from_stored(
        cls, value: str, sub_sequence_number: int = 0, timestamp_ms: int | None = None
    ) -> Checkpoint:
        if value.isdigit():
            return cls.after(value, sub_sequence_number)
        if value not in _SENTINELS:
            raise ValueError(f"unknown checkpoint value {value!r}")
        at_timestamp = value == Position.AT_TIMESTAMP
        return cls(Position(value), timestamp_ms=timestamp_ms if at_timestamp else None)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """CLI syntax: TRIM_HORIZON | LATEST | AT_TIMESTAMP=<ISO time or epoch ms> | SHARD_END
        | <sequence number>[:<sub-sequence number>]."""
        if text.startswith("AT_TIMESTAMP="):
            raw = text.split("=", 1)[1]
            if raw.isdigit():
                return cls.at_timestamp(int(raw))
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return cls.at_timestamp(when)
        if text == Position.AT_TIMESTAMP.value:
            raise ValueError("AT_TIMESTAMP needs a time: AT_TIMESTAMP=2026-01-31T12:00:00Z")
        sequence, _, sub = text.partition(":")
        if sequence.isdigit():
            return cls.after(sequence, int(sub) if sub else 0)
        return cls.from_stored(text)

    def __str__(self) -> str:
        if self.position is Position.AFTER_SEQUENCE_NUMBER:
            suffix = f":{self.sub_sequence_number}" if self.sub_sequence_number else ""
            return f"{self.sequence_number}{suffix}"
        if self.position is Position.AT_TIMESTAMP and self.timestamp is not None:
            return f"AT_TIMESTAMP={self.timestamp.isoformat()}"
        return self.position.value


@dataclass(frozen=True)
class Lease:
    """One shard's lease as stored. `counter` is the fencing token of ownership changes."""

    key: str
    shard_id: str
    owner: str | None = None
    counter: int = 0
    checkpoint: Checkpoint = field(default_factory=Checkpoint.trim_horizon)
    pending_checkpoint: Checkpoint | None = None
    owner_switches: int = 0
    parent_shard_ids: frozenset[str] = frozenset()
    child_shard_ids: frozenset[str] = frozenset()
    handoff_to: str | None = None

    @property
    def finished(self) -> bool:
        return self.checkpoint.is_shard_end


@dataclass(frozen=True)
class WorkerHeartbeat:
    """A worker's heartbeat item. Liveness is judged from `counter` changes, never from
    `heartbeat_at` (a wall-clock time kept only for people reading the table)."""

    worker_id: str
    counter: int
    fenced_by: str | None = None
    heartbeat_at: str | None = None
    lease_count: int = 0


@dataclass(frozen=True)
class TableSnapshot:
    """Everything one Scan of the lease table returned."""

    leases: tuple[Lease, ...] = ()
    workers: Mapping[str, WorkerHeartbeat] = field(default_factory=dict)

    def lease(self, key: str) -> Lease | None:
        return next((lease for lease in self.leases if lease.key == key), None)


def worker_key(worker_id: str) -> str:
    return WORKER_KEY_PREFIX + worker_id


def is_worker_key(key: str) -> bool:
    return key.startswith(WORKER_KEY_PREFIX)


# --- item codec -------------------------------------------------------------------------


def s(value: str) -> AttributeValue:
    return {"S": value}


def n(value: int) -> AttributeValue:
    return {"N": str(value)}


def ss(values: Iterable[str]) -> AttributeValue:
    return {"SS": sorted(values)}


def text_attr(item: Item, name: str) -> str | None:
    value = item.get(name, {})
    return str(value["S"]) if "S" in value else None


def _opt_int(item: Item, name: str) -> int | None:
    value = item.get(name, {})
    return int(value["N"]) if "N" in value else None


def int_attr(item: Item, name: str, default: int = 0) -> int:
    value = _opt_int(item, name)
    return default if value is None else value


def _set(item: Item, name: str) -> frozenset[str]:
    value = item.get(name, {})
    if "SS" in value:
        return frozenset(str(v) for v in value["SS"])
    if "L" in value:  # tolerate lists written by other tools
        return frozenset(str(v["S"]) for v in value["L"] if "S" in v)
    if "S" in value:
        return frozenset({str(value["S"])})
    return frozenset()


def shard_id_of(item: Item) -> str:
    """KCL single-stream leases are keyed by shard id; multi-stream ones carry `shardId`
    (their key is "account:stream:epoch:shardId")."""
    explicit = text_attr(item, Attr.SHARD_ID)
    if explicit:
        return explicit
    key = text_attr(item, Attr.LEASE_KEY) or ""
    return key.rsplit(":", 1)[-1]


# The attributes of the checkpoint and of the pending one: value, sub-sequence number, time.
_CHECKPOINT = (Attr.CHECKPOINT, Attr.CHECKPOINT_SUB, Attr.CHECKPOINT_TIMESTAMP)
_PENDING = (Attr.PENDING_CHECKPOINT, Attr.PENDING_CHECKPOINT_SUB, Attr.PENDING_CHECKPOINT_TIMESTAMP)


def _checkpoint_of(item: Item, value: str, sub: str, timestamp: str) -> Checkpoint | None:
    stored = text_attr(item, value)
    if not stored:
        return None
    return Checkpoint.from_stored(stored, int_attr(item, sub), _opt_int(item, timestamp))


def lease_from_item(item: Item) -> Lease:
    key = text_attr(item, Attr.LEASE_KEY)
    if key is None:
        raise ValueError("lease item without leaseKey")
    checkpoint = _checkpoint_of(item, *_CHECKPOINT)
    return Lease(
        key=key,
        shard_id=shard_id_of(item),
        owner=text_attr(item, Attr.LEASE_OWNER),
        counter=int_attr(item, Attr.LEASE_COUNTER),
        checkpoint=checkpoint or Checkpoint.trim_horizon(),
        pending_checkpoint=_checkpoint_of(item, *_PENDING),
        owner_switches=int_attr(item, Attr.OWNER_SWITCHES),
        parent_shard_ids=_set(item, Attr.PARENT_SHARD_IDS),
        child_shard_ids=_set(item, Attr.CHILD_SHARD_IDS),
        handoff_to=text_attr(item, Attr.HANDOFF_TO),
    )


def lease_to_item(lease: Lease) -> dict[str, AttributeValue]:
    """The full item for a new lease (creation, import, tests)."""
    item: dict[str, AttributeValue] = {
        Attr.LEASE_KEY: s(lease.key),
        Attr.LEASE_COUNTER: n(lease.counter),
        Attr.CHECKPOINT: s(lease.checkpoint.stored_value),
        Attr.CHECKPOINT_SUB: n(lease.checkpoint.sub_sequence_number),
        Attr.OWNER_SWITCHES: n(lease.owner_switches),
    }
    if lease.key != lease.shard_id:
        item[Attr.SHARD_ID] = s(lease.shard_id)
    if lease.owner is not None:
        item[Attr.LEASE_OWNER] = s(lease.owner)
    if lease.checkpoint.timestamp_ms is not None:
        item[Attr.CHECKPOINT_TIMESTAMP] = n(lease.checkpoint.timestamp_ms)
    if lease.pending_checkpoint is not None:
        item[Attr.PENDING_CHECKPOINT] = s(lease.pending_checkpoint.stored_value)
        item[Attr.PENDING_CHECKPOINT_SUB] = n(lease.pending_checkpoint.sub_sequence_number)
        if lease.pending_checkpoint.timestamp_ms is not None:
            item[Attr.PENDING_CHECKPOINT_TIMESTAMP] = n(lease.pending_checkpoint.timestamp_ms)
    # DynamoDB string sets cannot be empty: absent means none.
    if lease.parent_shard_ids:
        item[Attr.PARENT_SHARD_IDS] = ss(lease.parent_shard_ids)
    if lease.child_shard_ids:
        item[Attr.CHILD_SHARD_IDS] = ss(lease.child_shard_ids)
    if lease.handoff_to is not None:
        item[Attr.HANDOFF_TO] = s(lease.handoff_to)
    return item


def heartbeat_from_item(item: Item) -> WorkerHeartbeat:
    key = text_attr(item, Attr.LEASE_KEY) or ""
    worker_id = text_attr(item, Attr.WORKER_ID) or key.removeprefix(WORKER_KEY_PREFIX)
    return WorkerHeartbeat(
        worker_id=worker_id,
        counter=int_attr(item, Attr.HEARTBEAT_COUNTER),
        fenced_by=text_attr(item, Attr.FENCED_BY),
        heartbeat_at=text_attr(item, Attr.HEARTBEAT_AT),
        lease_count=int_attr(item, Attr.LEASE_COUNT),
    )


def snapshot_from_items(items: Iterable[Item]) -> TableSnapshot:
    leases: list[Lease] = []
    workers: dict[str, WorkerHeartbeat] = {}
    for item in items:
        key = text_attr(item, Attr.LEASE_KEY) or ""
        if is_worker_key(key):
            heartbeat = heartbeat_from_item(item)
            workers[heartbeat.worker_id] = heartbeat
        elif not key.startswith(SNAPSHOT_KEY_PREFIX):
            leases.append(lease_from_item(item))
    return TableSnapshot(tuple(sorted(leases, key=lambda lease: lease.key)), workers)


def parents_done(lease: Lease, by_key: Mapping[str, Lease]) -> bool:
    """Invariant 4: a shard may be read only when every parent is at SHARD_END. A parent
    without a lease counts as done: it was cleaned up after retention, or it ended before
    this application started (LATEST)."""
    return all(by_key[parent].finished for parent in lease.parent_shard_ids if parent in by_key)


def is_available(lease: Lease, by_key: Mapping[str, Lease]) -> bool:
    """A lease that may be processed now: not finished and all its parents finished."""
    return not lease.finished and parents_done(lease, by_key)
