"""Backoff with full jitter for every open-ended retry loop in the service; its delays come from
`checkpoints.retry.full_jitter`, the formula of the bounded `call_with_retry` too."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from checkpoints.retry import full_jitter


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
