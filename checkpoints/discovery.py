"""Shard discovery: which shards exist, and which leases to create or clean up.

`ShardLister` is the one call the coordinator needs from the stream (the service passes in
Kinesis' or DynamoDB Streams' listers, `consumer.aws.shards`); the planning functions here are
pure so unit tests can drive them with plain lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from checkpoints.model import Checkpoint, Lease, Position


@dataclass(frozen=True)
class ShardInfo:
    shard_id: str
    parent_shard_ids: frozenset[str] = frozenset()
    closed: bool = False  # has an ending sequence number: no new records will arrive


class ShardLister(Protocol):
    """Lists every shard of the stream that is within retention, open and closed, with its
    parents. Raises on failure (the caller retries on its next round)."""

    async def list_shards(self) -> list[ShardInfo]: ...


def plan_new_leases(
    shards: Sequence[ShardInfo],
    leases: Sequence[Lease],
    initial_position: Checkpoint,
) -> list[Lease]:
    """Leases to create, parents before children (each creation is a conditional put, so
    workers racing here are harmless, and a crash midway leaves a prefix that the next round
    completes).

    - A child of a shard whose lease already existed (a split or merge seen while running)
      starts at TRIM_HORIZON: nothing after its parents is skipped.
    - A child of a shard created in this same round inherits that parent's start (on a first
      start AT_TIMESTAMP must not re-read a child's records from before the timestamp).
    - Any other shard starts at the initial position, except that with LATEST a closed shard
      is history from before this application started and gets no lease.
    """
    existing = {lease.key for lease in leases}
    created: dict[str, Lease] = {}
    for shard in _parents_first(shards):
        if shard.shard_id in existing or shard.shard_id in created:
            continue
        old_parents = [p for p in shard.parent_shard_ids if p in existing]
        new_parents = [created[p] for p in sorted(shard.parent_shard_ids) if p in created]
        if old_parents:
            start = Checkpoint.trim_horizon()
        elif new_parents:
            starts = [parent.checkpoint for parent in new_parents]
            trim = Checkpoint.trim_horizon()
            start = trim if trim in starts else starts[0]
        elif initial_position.position is Position.LATEST and shard.closed:
            continue
        else:
            start = initial_position
        created[shard.shard_id] = Lease(
            key=shard.shard_id,
            shard_id=shard.shard_id,
            checkpoint=start,
            parent_shard_ids=shard.parent_shard_ids,
        )
    return list(created.values())


def _parents_first(shards: Sequence[ShardInfo]) -> list[ShardInfo]:
    by_id = {shard.shard_id: shard for shard in shards}
    ordered: list[ShardInfo] = []
    done: set[str] = set()

    def visit(shard: ShardInfo, depth: int) -> None:
        if shard.shard_id in done or depth > len(by_id):
            return
        for parent in sorted(shard.parent_shard_ids):
            if parent in by_id:
                visit(by_id[parent], depth + 1)
        done.add(shard.shard_id)
        ordered.append(shard)

    for shard in sorted(shards, key=lambda s: s.shard_id):
        visit(shard, 0)
    return ordered


def children_to_record(shards: Sequence[ShardInfo], leases: Sequence[Lease]) -> dict[str, set[str]]:
    """Parent lease key -> child shard ids listed by Kinesis but missing from its
    `childShardIds` attribute."""
    by_key = {lease.key: lease for lease in leases}
    missing: dict[str, set[str]] = {}
    for shard in shards:
        for parent in shard.parent_shard_ids:
            lease = by_key.get(parent)
            if lease is not None and shard.shard_id not in lease.child_shard_ids:
                missing.setdefault(parent, set()).add(shard.shard_id)
    return missing


def plan_cleanup(shards: Sequence[ShardInfo], leases: Sequence[Lease]) -> list[str]:
    """Keys of leases to delete: at SHARD_END, no longer listed (past retention), and every
    known child has a lease (so the child's "parent without lease = done" rule is true)."""
    listed = {shard.shard_id for shard in shards}
    keys = {lease.key for lease in leases}
    return sorted(
        lease.key
        for lease in leases
        if lease.finished
        and lease.shard_id not in listed
        and lease.child_shard_ids <= keys  # children known from their own lease have one
    )
