"""`--max-read-units` is the whole backfill's budget, shared by every process that runs it through
heartbeats in the snapshot's `@readers` item (README, "Backfill"). A killed process counts until
its entry expires (`backfill.lease_s`): meanwhile the others read a little slower, never faster.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import KW_ONLY, dataclass, field

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


@dataclass
class SharedReadBudget:
    """Keeps one process's limiter at its share of the backfill's budget. No I/O until used."""

    leases: SnapshotLeases
    snapshot_id: str
    process_id: str
    max_read_units: float | None
    limiter: ReadUnitLimiter
    _: KW_ONLY
    interval_s: float = 1.0
    processes: int = field(default=0, init=False)
    lowest_rate: float = field(default=math.inf, init=False)  # the smallest share this process had

    async def refresh(self) -> None:
        """Beat our heartbeat, then set the limiter from every live process's entry."""
        await self.leases.beat_reader(self.snapshot_id, self.process_id, self.max_read_units)
        limits = await self.leases.live_readers(self.snapshot_id)
        if self.process_id not in limits:  # our own beat is live by definition
            limits[self.process_id] = self.max_read_units
        rate = share_of(list(limits.values()))
        if rate != self.limiter.units_per_s or len(limits) != self.processes:
            log.info("backfill.read_share", processes=len(limits), read_units_per_s=rate)
        self.processes = len(limits)
        self.lowest_rate = min(self.lowest_rate, rate)
        self.limiter.set_rate(rate)

    async def run(self) -> None:
        """Refreshes every `interval_s` until cancelled; a failed beat keeps the last rate."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.refresh()
            except Exception as error:  # the share must never stop the backfill
                log.warning("backfill.read_share_failed", error=str(error))
