"""The heartbeat keeps its cadence when the table answers slowly (issue 15: a starting worker
under load lost its own leases to the local expiry).

A beat's validity runs from the start of its write, so each interval the loop adds after an
answer instead of after the previous start is time taken from the local expiry. Here the table
answers in 60% of the interval: beats must still start one interval apart, not 1.6 apart.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from typing import Any, cast

from checkpoints.context import LeaseContext
from checkpoints.heartbeat import Heartbeat
from checkpoints.settings import LeaseSettings
from checkpoints.table import LeaseTable

INTERVAL_S = 0.1
ANSWER_S = 0.06


class SlowTable:
    """A lease table whose heartbeat write takes ANSWER_S; notes when each one started."""

    def __init__(self) -> None:
        self.started: list[float] = []

    async def register_worker(self, worker_id: str, lease_count: int, **_: Any) -> int:
        return 1

    async def heartbeat(self, worker_id: str, counter: int, lease_count: int, **_: Any) -> int:
        self.started.append(time.monotonic())
        await asyncio.sleep(ANSWER_S)
        return counter + 1


async def test_beats_start_one_interval_apart_when_the_table_answers_slowly() -> None:
    settings = LeaseSettings(
        application_name="cadence", heartbeat_interval_s=INTERVAL_S, failover_s=1.0
    )
    table = SlowTable()
    context = LeaseContext(settings, cast(LeaseTable, table), Counter(), time.monotonic)
    heartbeat = Heartbeat(
        context, "w1", held_count=lambda: 1, on_lapse=lambda _: None, rng=random.Random(1)
    )
    await heartbeat.register()
    beating = asyncio.create_task(heartbeat.beat())
    await asyncio.sleep(12 * INTERVAL_S)
    beating.cancel()

    gaps = [b - a for a, b in zip(table.started, table.started[1:], strict=False)]
    assert len(gaps) >= 5
    # One interval (+-5% jitter, + a loaded machine's timer lateness), not interval + answer.
    assert statistics.median(gaps) < INTERVAL_S + ANSWER_S / 2
    assert heartbeat.is_valid()
