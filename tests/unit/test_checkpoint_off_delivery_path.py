"""The consumer's own latency (issue 19): a checkpoint write never holds the next batch.

A checkpoint is a conditional write to the lease table; while it is in flight the shard keeps
applying batches, and what it may checkpoint is unchanged. A failed write still stops the
shard, a drain and SHARD_END still wait for it, and the start-up heap is frozen once so that
full garbage collections do not stall every shard.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterable

import pytest

import consumer.service.startup_heap as startup_heap
from checkpoints import LeaseLost
from consumer.pipeline.processor import Route, ShardPipeline
from tests.pipeline_fakes import MemoryDlq, MemorySink
from tests.unit.test_pipeline_processor import FAST, SHARD, batch


class GatedCheckpointer:
    """A lease table whose checkpoint writes take as long as the test says."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started: list[tuple[str, int]] = []
        self.written: list[tuple[str, int]] = []
        self.shard_end_after: list[tuple[str, int]] | None = None
        self.fail_with: BaseException | None = None

    async def checkpoint(self, sequence_number: str, sub_sequence_number: int = 0) -> None:
        self.started.append((sequence_number, sub_sequence_number))
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        self.written.append((sequence_number, sub_sequence_number))

    async def checkpoint_shard_end(self, child_shard_ids: Iterable[str] = ()) -> None:
        self.shard_end_after = list(self.written)


def gated_pipeline() -> tuple[ShardPipeline, MemorySink, GatedCheckpointer]:
    sink = MemorySink()
    checkpointer = GatedCheckpointer()
    routes = [Route(sink, policy=FAST)]
    shard = ShardPipeline(
        "stream", SHARD, routes, MemoryDlq(), checkpointer, checkpoint_interval_s=0
    )
    return shard, sink, checkpointer


async def test_the_next_batch_is_applied_while_a_checkpoint_write_is_in_flight() -> None:
    shard, sink, checkpointer = gated_pipeline()
    # Before: process() awaited the write, so the first batch never returned here.
    await asyncio.wait_for(shard.process(batch(0, 5)), timeout=2)
    assert checkpointer.started == [("4", 0)] and checkpointer.written == []
    await asyncio.wait_for(shard.process(batch(5, 5)), timeout=2)
    assert len(sink.applied) == 10
    checkpointer.gate.set()
    await shard.drain()
    # One write at a time, in order; the drain writes what was applied meanwhile.
    assert checkpointer.written == [("4", 0), ("9", 0)]
    assert shard.stats.checkpoints == 2


async def test_a_failed_checkpoint_write_stops_the_shard_at_its_next_batch() -> None:
    shard, sink, checkpointer = gated_pipeline()
    await asyncio.wait_for(shard.process(batch(0, 5)), timeout=2)
    checkpointer.fail_with = LeaseLost("lease", "taken by worker-b")
    checkpointer.gate.set()
    await asyncio.sleep(0.01)
    with pytest.raises(LeaseLost):
        await asyncio.wait_for(shard.process(batch(5, 5)), timeout=2)
    assert len(sink.applied) == 5


async def test_shard_end_is_written_only_after_the_checkpoint_in_flight() -> None:
    shard, _, checkpointer = gated_pipeline()
    await asyncio.wait_for(shard.process(batch(0, 5)), timeout=2)
    finishing = asyncio.create_task(shard.process(batch(5, 1, end=True)))
    await asyncio.sleep(0.01)
    assert checkpointer.shard_end_after is None  # SHARD_END waits for the write in flight
    checkpointer.gate.set()
    await asyncio.wait_for(finishing, timeout=2)
    assert checkpointer.shard_end_after == [("4", 0)]


async def test_closing_without_a_drain_abandons_the_write_in_flight() -> None:
    shard, _, checkpointer = gated_pipeline()
    await asyncio.wait_for(shard.process(batch(0, 5)), timeout=2)
    await asyncio.wait_for(shard.aclose(), timeout=2)
    checkpointer.gate.set()
    await asyncio.sleep(0.01)
    assert checkpointer.written == []  # at least once: the next owner re-reads from before


def test_the_start_up_heap_is_frozen_once_and_later_objects_are_still_collected() -> None:
    startup_heap._frozen = False
    try:
        assert startup_heap.freeze_startup_heap() is True
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # modules, classes, pytest's own heap
        assert startup_heap.freeze_startup_heap() is False
        assert gc.get_freeze_count() == frozen

        class Cycle:
            other: object = None

        first, second = Cycle(), Cycle()
        first.other, second.other = second, first
        del first, second
        assert gc.collect() >= 2  # a cycle made after the freeze is still garbage-collected
    finally:
        gc.unfreeze()
        startup_heap._frozen = False
