"""The share of `--max-read-units` each backfill process takes, and the limiter's rate change."""

from __future__ import annotations

import asyncio
import math

import pytest

from consumer.snapshot.rate import ReadUnitLimiter
from consumer.snapshot.read_budget import share_of
from tests.fake_time import FakeTime


def test_the_budget_is_the_smallest_given_shared_by_every_live_process() -> None:
    assert share_of([100.0]) == 100.0
    assert share_of([100.0, 100.0, 100.0, 100.0]) == 25.0
    assert share_of([100.0, 40.0]) == 20.0  # never more than the strictest asked for
    assert share_of([100.0, None]) == 50.0  # a process without a limit takes its share
    assert share_of([None, None]) == math.inf
    assert share_of([]) == math.inf


def test_a_lower_rate_also_lowers_the_burst_and_infinity_never_waits() -> None:
    time = FakeTime()
    limiter = ReadUnitLimiter(math.inf, clock=time.clock, sleep=time.sleep)

    async def pages(count: int, units: float) -> None:
        for _ in range(count):
            await limiter.acquire()
            limiter.pay(units)

    asyncio.run(pages(100, 50.0))
    assert time.now == 0.0  # no limit: no waiting
    limiter.set_rate(10.0)
    time.now += 100.0  # a long pause refills at most one second of the new rate
    asyncio.run(pages(10, 5.0))  # 50 units: 10 of burst, 40 at 10/s (one page in debt)
    assert time.now - 100.0 == pytest.approx(3.5, abs=0.01)
    with pytest.raises(ValueError, match="> 0"):
        limiter.set_rate(0)
