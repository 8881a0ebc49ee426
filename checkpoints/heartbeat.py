"""Heartbeat and self-fencing: one conditional write of this worker's heartbeat item per interval
keeps every lease it holds (README: Leases), and the watchdog drops them all once the last
confirmed heartbeat *started* more than `local_expiry_s` ago, before any observer may take them
(see liveness.py).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import structlog

from checkpoints.context import TABLE_ERRORS, LeaseContext
from checkpoints.identity import resolve_worker_id

log = structlog.get_logger(__name__)


class Heartbeat:
    """This worker's identity and its right to work: `is_valid()` is True while the last
    confirmed heartbeat is recent enough. `on_lapse(reason)` is called when that right is lost
    (fenced by another worker, or the local expiry passed while leases are held)."""

    def __init__(
        self,
        context: LeaseContext,
        worker_id: str | None,
        *,
        held_count: Callable[[], int],
        on_lapse: Callable[[str], None],
        rng: random.Random,
    ) -> None:
        self._settings, self._table = context.settings, context.table
        self._counters, self._clock = context.counters, context.clock
        self._worker_id = worker_id
        self._held_count = held_count
        self._on_lapse = on_lapse
        self._rng = rng
        self._counter = 0
        self._registered = False
        self._valid_until = float("-inf")

    @property
    def worker_id(self) -> str:
        if self._worker_id is None:
            raise RuntimeError("worker id is resolved by start()")
        return self._worker_id

    def is_valid(self) -> bool:
        return self._clock() < self._valid_until

    async def register(self, deadline: float | None = None) -> None:
        if self._worker_id is None:
            self._worker_id = await resolve_worker_id()
        # Validity runs from the *first* attempt's start: the write that succeeded landed no
        # earlier, so no observer's failover window for it can start before this moment.
        started = self._clock()
        self._counter = await self._table.register_worker(
            self._worker_id, self._held_count(), deadline=deadline
        )
        self._registered = True
        self._valid_until = started + self._settings.local_expiry_s

    async def beat(self) -> None:
        """The heartbeat loop, one beat an interval after the last one *started* (a slow answer
        must not push the next towards the local expiry); the watchdog acts on failures."""
        next_at = self._clock()
        while True:
            next_at += self._settings.heartbeat_interval_s * self._rng.uniform(0.95, 1.05)
            await asyncio.sleep(next_at - self._clock())
            next_at = max(next_at, self._clock())  # late after a stall: no burst of beats
            try:
                await self.beat_once()
            except TABLE_ERRORS as error:
                self._counters["heartbeat_failures"] += 1
                log.warning("lease.heartbeat_failed", worker=self._worker_id, error=str(error))

    async def beat_once(self) -> None:
        started = self._clock()
        deadline = started + self._settings.heartbeat_interval_s
        if not self._registered:
            await self.register(deadline)
            log.info("lease.heartbeat_reregistered", worker=self._worker_id)
            return
        counter = await self._table.heartbeat(
            self.worker_id, self._counter, self._held_count(), deadline=deadline
        )
        if counter is None:
            self._counters["fenced_by_others"] += 1
            self._registered = False
            self._valid_until = float("-inf")
            self._on_lapse("another worker declared this one dead")
            return
        self._counter = counter
        self._valid_until = max(self._valid_until, started + self._settings.local_expiry_s)

    async def watch(self) -> None:
        """The watchdog loop: drops every lease when the local expiry passed unconfirmed."""
        while True:
            remaining = self._valid_until - self._clock()
            if remaining > 0:
                await asyncio.sleep(remaining)
                continue
            if self._held_count():
                self._counters["local_expiries"] += 1
                self._on_lapse("heartbeat not confirmed within the local expiry")
            await asyncio.sleep(self._settings.heartbeat_interval_s / 4)
