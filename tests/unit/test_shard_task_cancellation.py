"""Lease loss cancels a shard's task at any await point; nothing may outlive it.

Issue 21.2: cancelling `run_shard` while it awaited the next batch left the read-ahead task
running, never closed the reader (the EFO subscription or polling loop went on reading after
the lease was gone) and skipped `pipeline.aclose()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from checkpoints import Checkpoint, StopReason
from consumer.records.batch import ReadBatch
from consumer.service.shard_task import ShardActivity, run_shard
from consumer.sources.model import StartPosition
from consumer.sources.prefetch import STOPPED, prefetch, unless_stopped


class EndlessSource:
    """A reader whose second read never returns (a quiet shard), recording its closing."""

    def __init__(self) -> None:
        self.closed = False
        self.reading = asyncio.Event()

    async def items(self) -> AsyncIterator[int]:
        try:
            yield 1
            self.reading.set()
            await asyncio.Event().wait()
            yield 2
        finally:
            self.closed = True

    def read(self, shard_id: str, start: StartPosition) -> AsyncIterator[ReadBatch]:
        async def batches() -> AsyncIterator[ReadBatch]:
            async for _ in self.items():
                yield ReadBatch(shard_id, [], millis_behind_latest=0, resume_after=None)

        return batches()


def other_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


async def test_cancelling_a_prefetch_consumer_closes_the_source_and_leaves_no_task() -> None:
    source = EndlessSource()

    async def consume() -> None:
        async for _ in prefetch(source.items(), max_batches=2):
            pass

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(source.reading.wait(), 5)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert source.closed
    assert other_tasks() == set()


async def test_unless_stopped_next_cancelled_mid_wait_allows_closing_the_generator() -> None:
    source = EndlessSource()
    items = prefetch(source.items(), max_batches=2)
    stop: asyncio.Future[StopReason] = asyncio.get_running_loop().create_future()
    assert await unless_stopped(anext(items), stop) == 1
    waiter = asyncio.create_task(unless_stopped(anext(items), stop))
    await asyncio.wait_for(source.reading.wait(), 5)
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await items.aclose()  # raised "asynchronous generator is already running" before the fix
    assert source.closed
    assert other_tasks() == set()


async def test_a_stop_wins_over_a_quiet_reader() -> None:
    source = EndlessSource()
    items = prefetch(source.items(), max_batches=1)
    stop: asyncio.Future[StopReason] = asyncio.get_running_loop().create_future()
    await unless_stopped(anext(items), stop)
    asyncio.get_running_loop().call_later(0.05, stop.set_result, StopReason.LOST)
    assert await unless_stopped(anext(items), stop) is STOPPED
    await items.aclose()
    assert source.closed


class QuietHandle:
    shard_id = "shardId-000000000000"
    start_position = Checkpoint.trim_horizon()

    def __init__(self) -> None:
        self.lost = asyncio.Event()

    async def wait_stop(self) -> StopReason:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class RecordingPipeline:
    def __init__(self) -> None:
        self.closed = False
        self.batches = 0

    async def process(self, batch: ReadBatch) -> None:
        self.batches += 1

    async def drain(self) -> None:
        return None

    def stop_waiting(self) -> None:
        return None

    async def aclose(self) -> None:
        self.closed = True


async def test_cancelling_run_shard_while_it_waits_closes_reader_read_ahead_and_pipeline() -> None:
    source = EndlessSource()
    pipeline = RecordingPipeline()
    shard = asyncio.create_task(
        run_shard(
            QuietHandle(),  # type: ignore[arg-type]  # the handle's read-only surface
            source,
            lambda _: pipeline,  # type: ignore[arg-type,return-value]
            ShardActivity(),
        )
    )
    await asyncio.wait_for(source.reading.wait(), 5)
    await asyncio.sleep(0.01)
    shard.cancel()
    with pytest.raises(asyncio.CancelledError):  # not RuntimeError from aclose()
        await shard
    assert pipeline.batches == 1
    assert source.closed
    assert pipeline.closed
    assert other_tasks() == set()
