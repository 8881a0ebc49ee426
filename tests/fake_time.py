"""A clock that moves only when slept on: rate limiters run through time without waiting."""

from __future__ import annotations


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
