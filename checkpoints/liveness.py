"""Liveness as one observer sees it, on its own monotonic clock: a worker is live while its
heartbeat counter keeps changing, and expired when the value first seen (after the read that
returned it completed) is unchanged `failover_s` later; settings.py says why an expired worker
has already stopped. Leases whose owner has no heartbeat item (e.g. adopted from KCL) are
judged the KCL way: by their own `leaseCounter`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from checkpoints.model import TableSnapshot, WorkerHeartbeat


class WorkerState(StrEnum):
    LIVE = "live"
    EXPIRED = "expired"  # heartbeat unchanged for failover_s: fence it, then take its leases
    FENCED = "fenced"  # someone declared it dead; it cannot heartbeat until it re-registers


@dataclass(frozen=True)
class WorkerView:
    worker_id: str
    state: WorkerState
    counter: int


class _Sighting(NamedTuple):
    value: tuple[object, ...]
    first_seen: float


def _sight(sightings: Mapping[str, _Sighting], values: Mapping[str, tuple[object, ...]],
           now: float) -> dict[str, _Sighting]:
    """When each key's current value was first seen (keys no longer there are forgotten)."""
    return {
        key: old if (old := sightings.get(key)) and old.value == value else _Sighting(value, now)
        for key, value in values.items()
    }


class LivenessTracker:
    """Remembers first sightings of heartbeat counters and lease counters. Feed it every
    snapshot with the time the read completed; ask it for views at any later time."""

    def __init__(self, failover_s: float) -> None:
        self._failover_s = failover_s
        self._workers: dict[str, _Sighting] = {}
        self._heartbeats: Mapping[str, WorkerHeartbeat] = {}
        self._leases: dict[str, _Sighting] = {}

    def observe(self, snapshot: TableSnapshot, now: float) -> None:
        self._heartbeats = snapshot.workers
        self._workers = _sight(
            self._workers, {w: (h.counter,) for w, h in snapshot.workers.items()}, now
        )
        self._leases = _sight(
            self._leases,
            {
                lease.key: (lease.owner, lease.counter)
                for lease in snapshot.leases
                if lease.owner is not None and lease.owner not in snapshot.workers
            },
            now,
        )

    def _fenced(self, worker_id: str) -> bool:
        return self._heartbeats[worker_id].fenced_by is not None

    def workers(self, now: float) -> dict[str, WorkerView]:
        views: dict[str, WorkerView] = {}
        for worker_id, sighting in self._workers.items():
            if self._fenced(worker_id):
                state = WorkerState.FENCED
            elif now - sighting.first_seen >= self._failover_s:
                state = WorkerState.EXPIRED
            else:
                state = WorkerState.LIVE
            views[worker_id] = WorkerView(worker_id, state, self._heartbeats[worker_id].counter)
        return views

    def expired_leases(self, now: float) -> frozenset[str]:
        """Leases of owners without a heartbeat item whose counter stood still for failover_s."""
        return frozenset(
            key
            for key, sighting in self._leases.items()
            if now - sighting.first_seen >= self._failover_s
        )

    def next_deadline(self, now: float, owners: Mapping[str, int] | None = None) -> float | None:
        """The earliest future moment at which some worker (restricted to `owners`, worker id
        to lease count, when given) or heartbeat-less lease would expire: observers read the
        table again right then, so failover does not wait for the next regular tick."""
        deadlines = [
            sighting.first_seen + self._failover_s
            for worker_id, sighting in self._workers.items()
            if not self._fenced(worker_id) and (owners is None or owners.get(worker_id, 0) > 0)
        ]
        deadlines.extend(s.first_seen + self._failover_s for s in self._leases.values())
        future = [d for d in deadlines if d > now]
        return min(future) if future else None
