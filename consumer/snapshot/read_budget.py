"""`--max-read-units` is the whole backfill's budget, shared by every process that runs it.

Each process of a scan backfill beats a heartbeat into one lease-table item per snapshot
(`__snapshot__#<id>@readers`, a map: process -> {expiresAtMs, maxReadUnits}) and reads the
others' back, every `interval_s`. Its limiter's rate is then

    budget / live processes,   budget = the smallest --max-read-units among live processes

(processes that gave none do not vote, but take their share when any did). So N processes
started with the same R read at most R together, not N x R. A process that joins lowers the
others' shares at their next beat (within `interval_s`); one that ends removes its entry, one
killed stops counting when its entry expires (`backfill.lease_s`), until then the others read
a little slower, never faster.
"""

from __future__ import annotations

import asyncio
import math

import structlog

from consumer.snapshot.rate import ReadUnitLimiter
from consumer.snapshot.segments import SnapshotLeases

log = structlog.get_logger(__name__)


def share_of(limits: list[float | None]) -> float:
    """This process's rate, from every live process's --max-read-units (None: no limit)."""
    given = [limit for limit in limits if limit is not None]
    if not given:
        return math.inf
    return min(given) / max(1, len(limits))


class SharedReadBudget:
    """Keeps one process's limiter at its share of the backfill's budget. No I/O until used."""

    def __init__(
        self,
        leases: SnapshotLeases,
        snapshot_id: str,
        process_id: str,
        max_read_units: float | None,
        limiter: ReadUnitLimiter,
        *,
        interval_s: float = 1.0,
    ) -> None:
        self._leases = leases
        self._snapshot_id = snapshot_id
        self._process_id = process_id
        self._max_read_units = max_read_units
        self.limiter = limiter
        self._interval_s = interval_s
        self.processes = 0
        self.lowest_rate = math.inf  # the smallest share this process had

    async def refresh(self) -> None:
        """Beat our heartbeat, then set the limiter from every live process's entry."""
        await self._leases.beat_reader(self._snapshot_id, self._process_id, self._max_read_units)
        limits = await self._leases.live_readers(self._snapshot_id)
        if self._process_id not in limits:  # our own beat is live by definition
            limits[self._process_id] = self._max_read_units
        rate = share_of(list(limits.values()))
        if rate != self.limiter.units_per_s or len(limits) != self.processes:
            log.info("backfill.read_share", processes=len(limits), read_units_per_s=rate)
        self.processes = len(limits)
        self.lowest_rate = min(self.lowest_rate, rate)
        self.limiter.set_rate(rate)

    async def run(self) -> None:
        """Refreshes every `interval_s` until cancelled; a failed beat keeps the last rate."""
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.refresh()
            except Exception as error:  # the share must never stop the backfill
                log.warning("backfill.read_share_failed", error=str(error))

    async def leave(self) -> None:
        """Our share goes back to the others at their next beat."""
        await self._leases.drop_reader(self._snapshot_id, self._process_id)
