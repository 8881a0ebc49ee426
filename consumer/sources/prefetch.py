"""A bounded read-ahead buffer per shard: reading overlaps processing, memory stays bounded.

The reader runs at most `max_batches` batches ahead of the pipeline. When the buffer is full
the reader task waits, so it stops pulling from Kinesis: with polling it makes no GetRecords
call, with EFO it stops reading the socket and TCP flow control holds the server back.
Memory per shard is therefore at most (max_batches + 1) batches: with polling at most
(max_batches + 1) x 10 MiB (a GetRecords response's limit, reached only with huge records),
with EFO (max_batches + 1) events of a few MiB plus socket buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Slot(Generic[T]):
    value: T | None = None
    error: Exception | None = None
    done: bool = False


async def prefetch(source: AsyncIterator[T], max_batches: int = 2) -> AsyncGenerator[T, None]:
    """Yields what `source` yields, reading up to `max_batches` items ahead in a task.

    Errors of the source are raised here, after the items read before them. Closing this
    iterator cancels the read-ahead task.
    """
    if max_batches < 1:
        raise ValueError(f"max_batches must be at least 1, got {max_batches}")
    queue: asyncio.Queue[_Slot[T]] = asyncio.Queue(maxsize=max_batches)

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put(_Slot(value=item))
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
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


class Stopped:
    """What `next_unless_stopped` returns when the stop future completed first."""


STOPPED = Stopped()


async def next_unless_stopped(items: AsyncIterator[T], stop: asyncio.Future[Any]) -> T | Stopped:
    """The next item of `items`, or STOPPED as soon as `stop` is done (a stop wins a tie).

    Raises StopAsyncIteration at the end of `items`. The pending read never outlives this
    call, cancellation included: otherwise a later `aclose()` of the generator fails with
    "asynchronous generator is already running", and the read-ahead task and the reader
    behind it (an EFO subscription, a polling loop) keep reading after the lease is gone.
    """
    pending = asyncio.ensure_future(anext(items))
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
