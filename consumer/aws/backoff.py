"""Backoff with full jitter for every retry loop in the service, and the bounded retry of one
call. Both draw their delays from `checkpoints.retry.full_jitter` (one formula)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from checkpoints.retry import RetryPolicy, RetryStats, call_with_retry, full_jitter

__all__ = ["Backoff", "RetryPolicy", "RetryStats", "call_with_retry"]


@dataclass
class Backoff:
    """An open-ended loop's delays: base·2^n, capped, each drawn uniformly from [0, delay];
    `reset()` after a success."""

    base_s: float = 0.1
    cap_s: float = 10.0
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        delay = full_jitter(self.attempts, self.base_s, self.cap_s, self.rng.random)
        self.attempts += 1
        return delay

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        self.attempts = 0
