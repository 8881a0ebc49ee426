"""A shard's checkpoint write, off the delivery path: a conditional write to the lease table
(~10-30 ms, seconds when throttled) awaited inline held the next batch behind it.

- At most one write is in flight per shard, so writes cannot overtake each other; one that
  falls due meanwhile is written at the first batch after it.
- A failed write (LeaseLost, the table unavailable) is raised by the next `check`, `start` or
  `settle`; every sink write is fenced on its own, so a lost lease still writes nothing.
- `settle` waits for the write in flight: a drain, a handoff and SHARD_END come after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

Target = tuple[str, int]  # (sequence number, sub-sequence number)
WriteCheckpoint = Callable[[str, int], Awaitable[object]]


class CheckpointInFlight:
    """At most one checkpoint write at a time, running beside the shard's deliveries."""

    def __init__(self, write: WriteCheckpoint) -> None:
        self._write = write
        self._task: asyncio.Task[Target] | None = None

    async def _run(self, target: Target) -> Target:
        await self._write(*target)
        return target

    @property
    def busy(self) -> bool:
        """A write is in flight (started and not finished)."""
        return self._task is not None and not self._task.done()

    def check(self) -> list[Target]:
        """The target of a write that has finished since the last call (none if none did or
        one is still in flight); raises what a finished write raised."""
        task = self._task
        if task is None or not task.done():
            return []
        self._task = None
        return [task.result()]

    async def start(self, target: Target) -> list[Target]:
        """Waits for the write in flight, if any, then starts writing `target`. A write that
        needs no I/O (or fails at once) finishes before this returns. Returns the targets
        written meanwhile."""
        written = await self.settle()
        self._task = asyncio.create_task(self._run(target))
        await asyncio.sleep(0)  # one step of the write: it sends its request, or is done
        return [*written, *self.check()]

    async def settle(self) -> list[Target]:
        """Waits for the write in flight and returns its target (raising what it raised)."""
        task = self._task
        if task is None:
            return []
        self._task = None
        return [await task]

    async def cancel(self) -> None:
        """Abandons the write in flight (the shard is closing without a drain)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()  # a no-op once it is done
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
