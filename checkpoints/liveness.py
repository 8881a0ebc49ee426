"""Liveness as one observer sees it, on its own monotonic clock.

A worker is live while its heartbeat counter keeps changing. The observer remembers when it
*first* saw the current value (after the read that returned it completed); if the value is
unchanged `failover_s` later, the worker is expired. Because the owner's write of that value
started before this first sighting, and the owner stops working `local_expiry_s < failover_s`
after that start, an expired worker has already stopped (see settings.py). No clock sync.

Leases whose owner has no heartbeat item (e.g. adopted from KCL) are judged the KCL way: by
their own `leaseCounter`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from checkpoints.model import TableSnapshot


class WorkerState(StrEnum):
    LIVE = "live"
    EXPIRED = "expired"  # heartbeat unchanged for failover_s: fence it, then take its leases
    FENCED = "fenced"  # someone declared it dead; it cannot heartbeat until it re-registers


@dataclass(frozen=True)
class WorkerView:
    worker_id: str
    state: WorkerState
    counter: int


@dataclass
class _Sighting:
    value: tuple[object, ...]
    first_seen: float


class LivenessTracker:
    """Remembers first sightings of heartbeat counters and lease counters. Feed it every
    snapshot with the time the read completed; ask it for views at any later time."""

    def __init__(self, failover_s: float) -> None:
        self._failover_s = failover_s
        self._workers: dict[str, _Sighting] = {}
        self._counters: dict[str, int] = {}
        self._fenced: set[str] = set()
        self._leases: dict[str, _Sighting] = {}

    def observe(self, snapshot: TableSnapshot, now: float) -> None:
        seen: set[str] = set()
        for worker_id, heartbeat in snapshot.workers.items():
            seen.add(worker_id)
            self._counters[worker_id] = heartbeat.counter
            if heartbeat.fenced_by is not None:
                self._fenced.add(worker_id)
            else:
                self._fenced.discard(worker_id)
            value: tuple[object, ...] = (heartbeat.counter,)
            sighting = self._workers.get(worker_id)
            if sighting is None or sighting.value != value:
                self._workers[worker_id] = _Sighting(value, now)
        for gone in set(self._workers) - seen:
            del self._workers[gone]
            self._counters.pop(gone, None)
            self._fenced.discard(gone)
        lease_seen: set[str] = set()
        for lease in snapshot.leases:
            if lease.owner is None or lease.owner in snapshot.workers:
                continue
            lease_seen.add(lease.key)
            lease_value: tuple[object, ...] = (lease.owner, lease.counter)
            lease_sighting = self._leases.get(lease.key)
            if lease_sighting is None or lease_sighting.value != lease_value:
                self._leases[lease.key] = _Sighting(lease_value, now)
        for gone in set(self._leases) - lease_seen:
            del self._leases[gone]

    def workers(self, now: float) -> dict[str, WorkerView]:
        views: dict[str, WorkerView] = {}
        for worker_id, sighting in self._workers.items():
            if worker_id in self._fenced:
                state = WorkerState.FENCED
            elif now - sighting.first_seen >= self._failover_s:
                state = WorkerState.EXPIRED
            else:
                state = WorkerState.LIVE
            views[worker_id] = WorkerView(worker_id, state, self._counters[worker_id])
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
            if worker_id not in self._fenced and (owners is None or owners.get(worker_id, 0) > 0)
        ]
        deadlines.extend(s.first_seen + self._failover_s for s in self._leases.values())
        future = [d for d in deadlines if d > now]
        return min(future) if future else None
