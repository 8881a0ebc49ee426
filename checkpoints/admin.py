"""Operations on a lease table for people: list it, check nothing runs, reset it. The CLI
(`consumer leases ...`) is a thin layer over these; adopting KCL checkpoints is kcl_import.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from checkpoints.errors import LeaseError
from checkpoints.model import Checkpoint, Lease, Position, TableSnapshot, parents_done
from checkpoints.table import LeaseTable


class NotALeaseTable(LeaseError):
    """A table whose items are not leases (a typo in --table, or another application's)."""


async def scan_leases(table: LeaseTable) -> TableSnapshot:
    """The table's leases and heartbeats; NotALeaseTable when an item is not one."""
    try:
        return await table.scan()
    except (ValueError, KeyError, TypeError) as error:  # raised while reading an item
        raise NotALeaseTable(
            f"table {table.name} is not a lease table: an item is not a lease or heartbeat "
            f"({error}); check --table / --app"
        ) from None


@dataclass(frozen=True)
class LeaseRow:
    """One line of `consumer leases list`."""

    shard: str
    owner: str
    checkpoint: str
    parents: str
    state: str


def lease_state(lease: Lease, snapshot: TableSnapshot) -> str:
    by_key = {other.key: other for other in snapshot.leases}
    if lease.finished:
        return "finished"
    if not parents_done(lease, by_key):
        return "waiting-for-parents"
    if lease.owner is None:
        return "unowned"
    heartbeat = snapshot.workers.get(lease.owner)
    if heartbeat is not None and heartbeat.fenced_by is not None:
        return "owner-dead"
    if lease.handoff_to is not None:
        return f"handoff-to:{lease.handoff_to}"
    return "owned"


def lease_rows(snapshot: TableSnapshot) -> list[LeaseRow]:
    return [
        LeaseRow(
            shard=lease.shard_id,
            owner=lease.owner or "-",
            checkpoint=str(lease.checkpoint),
            parents=",".join(sorted(lease.parent_shard_ids)) or "-",
            state=lease_state(lease, snapshot),
        )
        for lease in snapshot.leases
    ]


def heartbeat_age_s(heartbeat_at: str | None, now: datetime | None = None) -> float | None:
    """Seconds since a heartbeat's wall-clock stamp (display and admin checks only)."""
    if not heartbeat_at:
        return None
    try:
        stamp = datetime.fromisoformat(heartbeat_at)
    except ValueError:
        return None
    return ((now or datetime.now(UTC)) - stamp).total_seconds()


@dataclass(frozen=True)
class Activity:
    """What moved between two reads of a table some seconds apart."""

    live_workers: frozenset[str] = frozenset()
    moving_leases: frozenset[str] = frozenset()

    @property
    def idle(self) -> bool:
        return not self.live_workers and not self.moving_leases


def compare_snapshots(
    first: TableSnapshot, second: TableSnapshot, recent_heartbeats: Iterable[str] = ()
) -> Activity:
    """Workers whose heartbeat moved (or is recent by wall clock) and leases whose counter
    moved (how a running KCL application shows itself: it renews every lease every ~3 s)."""
    live = set(recent_heartbeats)
    for worker_id, heartbeat in second.workers.items():
        before = first.workers.get(worker_id)
        if heartbeat.fenced_by is None and (before is None or before.counter != heartbeat.counter):
            live.add(worker_id)
    was = {lease.key: lease.counter for lease in first.leases}
    moving = frozenset(
        lease.key for lease in second.leases if was.get(lease.key, lease.counter) != lease.counter
    )
    return Activity(frozenset(live), moving)


async def observe_activity(
    table: LeaseTable, observe_s: float, failover_s: float = 10.0
) -> tuple[TableSnapshot, Activity]:
    """Reads the table twice, `observe_s` apart. Heartbeats stamped within `failover_s` by the
    wall clock also count as live (so a short observation still sees a running worker)."""
    first = second = await scan_leases(table)
    if observe_s > 0:
        await asyncio.sleep(observe_s)
        second = await scan_leases(table)
    recent = [
        worker_id
        for worker_id, heartbeat in second.workers.items()
        if heartbeat.fenced_by is None
        and (age := heartbeat_age_s(heartbeat.heartbeat_at)) is not None
        and age < failover_s
    ]
    return second, compare_snapshots(first, second, recent)


def reset_target(lease: Lease, to: Checkpoint) -> Checkpoint | None:
    """Where `reset --to` moves a lease, or None to leave it. TRIM_HORIZON and AT_TIMESTAMP
    re-read finished shards too; LATEST leaves finished shards finished."""
    if to.position is Position.LATEST and lease.finished:
        return None
    return to


async def reset_leases(table: LeaseTable, snapshot: TableSnapshot, to: Checkpoint) -> int:
    """Moves every lease to `to` and frees it (conditional on the counter read). Returns how
    many changed."""
    changed = 0
    for lease in snapshot.leases:
        target = reset_target(lease, to)
        if target is not None and await table.reset_lease(lease.key, lease.counter, target):
            changed += 1
    return changed
