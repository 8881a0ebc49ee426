"""A bounded read-ahead per shard (README, "Backpressure and memory"): the reader runs at most
`max_batches` batches ahead of the pipeline and waits while the buffer is full."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from consumer.sources.budget import DEFAULT_PER_SHARD_BYTES, ByteBudget

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Slot(Generic[T]):
    value: T | None = None
    error: Exception | None = None
    done: bool = False
    size: int = 0


@dataclass(frozen=True)
class ReadAheadLimits:
    """How far a shard may read ahead of its pipeline: `per_shard_bytes` of record payload
    (KCL's 8 MiB), shared with every shard of the worker through `worker` when given."""

    per_shard_bytes: int = DEFAULT_PER_SHARD_BYTES
    worker: ByteBudget | None = None


async def prefetch(
    source: AsyncIterator[T],
    max_batches: int = 2,
    *,
    size: Callable[[T], int] = lambda _: 0,
    limits: ReadAheadLimits | None = None,
) -> AsyncGenerator[T, None]:
    """Yields what `source` yields, reading up to `max_batches` items ahead in a task.

    With `limits` the read-ahead is bounded in bytes too (`size` of each item): before each
    read the task reserves the last item's bytes in the shard's and the worker's budgets. An
    item's bytes are held until the next one is asked for, all returned on close (which cancels
    the task). Errors of the source are raised here, after the items read before them.
    """
    if max_batches < 1:
        raise ValueError(f"max_batches must be at least 1, got {max_batches}")
    queue: asyncio.Queue[_Slot[T]] = asyncio.Queue(maxsize=max_batches)
    budgets = [] if limits is None else [ByteBudget(limits.per_shard_bytes)]
    if limits is not None and limits.worker is not None:
        budgets.append(limits.worker)
    held = [0] * len(budgets)  # bytes held in each budget: reserved, queued and in processing

    def give_back(amount: int) -> None:
        for index, budget in enumerate(budgets):
            held[index] -= amount
            budget.release(amount)

    async def pump() -> None:
        estimate = 0
        try:
            while True:
                for index, budget in enumerate(budgets):  # room first, then the read
                    # A shard that holds nothing may always read: no shard starves.
                    await budget.reserve(estimate, always=held[index] == 0)
                    held[index] += estimate
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    give_back(estimate)
                    break
                actual = size(item) if budgets else 0
                for index, budget in enumerate(budgets):
                    budget.adjust(estimate, actual)
                    held[index] += actual - estimate
                estimate = actual
                await queue.put(_Slot(value=item, size=actual))
        except Exception as error:  # handed to the consumer side, raised there
            await queue.put(_Slot(error=error))
            return
        await queue.put(_Slot(done=True))

    task = asyncio.create_task(pump())
    try:
        while True:
            slot = await queue.get()
            if slot.done:
                return
            if slot.error is not None:
                raise slot.error
            yield cast(T, slot.value)
            give_back(slot.size)  # the consumer asks for the next one: this one is processed
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for index, budget in enumerate(budgets):
            budget.release(held[index])
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


class Stopped:
    """What `unless_stopped` returns when the stop future completed first."""


STOPPED = Stopped()


async def unless_stopped(work: Awaitable[T], stop: asyncio.Future[Any]) -> T | Stopped:
    """What `work` returns (or raises), or STOPPED as soon as `stop` is done (a stop wins a
    tie). `work` never outlives this call, cancellation included: it is cancelled and awaited.
    For `anext(items)`: else a later `aclose()` of `items` fails with "asynchronous generator
    is already running", and the reader behind it reads on after the lease."""
    pending = asyncio.ensure_future(work)
    try:
        await asyncio.wait({pending, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await pending
    if stop.done() or pending.cancelled():
        return STOPPED
    return pending.result()
