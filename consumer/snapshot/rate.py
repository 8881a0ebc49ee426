"""A read-unit limiter: at most R read capacity units per second, as DynamoDB reports them.

A token bucket refilled at `units_per_s`, holding at most one second of units. A call waits
until the bucket is not in debt, then pays what it consumed (known only after it, so the bucket
may go into debt by one page, which the next call waits off). R may change while it runs
(`set_rate`); infinity means no limit.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from botocore.exceptions import ClientError

from consumer.aws.backoff import Backoff
from consumer.aws.errors import TRANSIENT_NETWORK_ERRORS, is_retryable


class ReadUnitLimiter:
    """Shared by every reader of one process; its rate is the process's share of the budget."""

    def __init__(
        self,
        units_per_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self.units_per_s = self._tokens = math.inf
        self.consumed = 0.0
        self.set_rate(units_per_s)

    def set_rate(self, units_per_s: float) -> None:
        """From now on at most `units_per_s` (infinity: no limit); a lower rate also lowers
        the burst, so a process whose share shrank cannot spend its old second of units."""
        if units_per_s <= 0:
            raise ValueError(f"read units per second must be > 0, got {units_per_s}")
        self._refill()
        self.units_per_s = units_per_s
        self._tokens = min(self._tokens, units_per_s)

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._updated
        self._updated = now
        if self._tokens < self.units_per_s:  # (infinity * 0 would be nan)
            self._tokens = min(self.units_per_s, self._tokens + elapsed * self.units_per_s)

    async def acquire(self) -> None:
        """Waits until a call may be made (the bucket is not in debt)."""
        while True:
            self._refill()
            if self._tokens > 0:
                return
            # At least a millisecond: float rounding must not turn this into a busy loop.
            await self._sleep(max(0.001, -self._tokens / self.units_per_s))

    def pay(self, units: float) -> None:
        """Records what a call consumed."""
        self._refill()
        self._tokens -= units
        self.consumed += units

    def page_limit(self, average_item_units: float) -> int | None:
        """A Scan `Limit` keeping one page within one second of units (None: no limit needed;
        a 1 MB page costs 128 units at eventual consistency)."""
        if self.units_per_s >= 128 or average_item_units <= 0:
            return None
        return max(1, int(self.units_per_s / average_item_units))


async def read_with_retries(
    call: Callable[[], Awaitable[dict[str, Any]]],
    limiter: ReadUnitLimiter | None,
    backoff: Backoff,
) -> dict[str, Any]:
    """One read (Scan, BatchGetItem) under the limiter, tried again after throttling, a 5xx or
    a dropped connection until it answers; other errors raise."""
    while True:
        if limiter is not None:
            await limiter.acquire()
        try:
            return await call()
        except ClientError as error:
            if not is_retryable(error):
                raise
        except TRANSIENT_NETWORK_ERRORS:
            pass
        await backoff.sleep()
