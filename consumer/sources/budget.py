"""Byte budgets for read-ahead, bounded in bytes as KCL's `maxByteSize` (README, "Memory under
backlog"): a shard holds at most its budget of record payload read ahead, all shards of a
worker at most the worker's; a shard waits for room *before* it reads again."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path

DEFAULT_PER_SHARD_BYTES = 8 * 1024 * 1024
# Record payload is a fraction of what its decoded events and the responses around it cost in
# memory (about 3-4x for destination records), so the worker budget is an eighth of the limit.
MEMORY_LIMIT_SHARE = 8
DEFAULT_WORKER_BYTES = 256 * 1024 * 1024  # when no memory limit is known
MIN_WORKER_BYTES = 16 * 1024 * 1024

CGROUP_LIMIT_FILES = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2 (Fargate platform 1.4, current ECS AMIs)
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)
UNLIMITED_V1 = 1 << 60  # v1 reports "no limit" as a huge number near 2**63


def memory_limit_bytes(files: tuple[Path, ...] = CGROUP_LIMIT_FILES) -> int | None:
    """The container's memory limit from its cgroup, or None when there is none."""
    for file in files:
        try:
            text = file.read_text().strip()
        except OSError:
            continue
        if text == "max" or not text.isdigit():
            return None
        value = int(text)
        return None if value >= UNLIMITED_V1 else value
    return None


def default_worker_budget(limit_bytes: int | None) -> int:
    if limit_bytes is None:
        return DEFAULT_WORKER_BYTES
    return max(MIN_WORKER_BYTES, limit_bytes // MEMORY_LIMIT_SHARE)


class ByteBudget:
    """Bytes that readers may hold ahead of processing (one event loop).

    `reserve(n)` waits until `n` more bytes fit, first come, first served; the only holder, and
    with `always` a caller that holds nothing, get them at once (a batch larger than the budget
    must not stall its shard, nor a shard starve: the worker's bound is its budget plus one
    batch per shard). `adjust` corrects a reservation to what was read; `release` returns
    bytes; `waits` counts reservations that had to wait.
    """

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes < 1:
            raise ValueError(f"a byte budget must be at least 1 byte, got {limit_bytes}")
        self.limit_bytes = limit_bytes
        self.in_use = 0
        self.waits = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def _fits(self, size: int) -> bool:
        return self.in_use == 0 or self.in_use + size <= self.limit_bytes

    async def reserve(self, size: int, *, always: bool = False) -> None:
        """Waits until `size` bytes fit; `always` takes them at once (a holder of nothing)."""
        if always or (not self._waiters and self._fits(size)):
            self.in_use += size
            return
        self.waits += 1
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (size, granted)
        self._waiters.append(waiter)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(size)  # granted just as we were cancelled: give it back
            else:
                self._waiters.remove(waiter)
                self._grant()
            raise

    def adjust(self, reserved: int, actual: int) -> None:
        self.in_use += actual - reserved
        self._grant()

    def release(self, size: int) -> None:
        self.in_use -= size
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            size, granted = self._waiters.popleft()
            self.in_use += size
            granted.set_result(None)
