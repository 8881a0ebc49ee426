"""Read-ahead bounded in bytes (issue 19.2): per shard like KCL's maxByteSize, and per worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from consumer.sources.budget import (
    DEFAULT_WORKER_BYTES,
    MIN_WORKER_BYTES,
    ByteBudget,
    default_worker_budget,
    memory_limit_bytes,
)
from consumer.sources.prefetch import ReadAheadLimits, prefetch

MIB = 1024 * 1024


class CountingSource:
    """An endless source of `item_bytes`-sized items that counts what it was asked for."""

    def __init__(self, item_bytes: int) -> None:
        self.item_bytes = item_bytes
        self.read = 0

    async def items(self) -> AsyncIterator[bytes]:
        while True:
            self.read += 1
            yield b"x" * self.item_bytes


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_shard_reads_no_further_ahead_than_its_byte_budget() -> None:
    source = CountingSource(1 * MIB)
    stream = prefetch(source.items(), 64, size=len, limits=ReadAheadLimits(per_shard_bytes=4 * MIB))
    await anext(stream)
    await settle()
    # One item in processing and three queued fill 4 MiB; the batch bound (64) never applies.
    assert source.read == 4
    await anext(stream)
    await settle()
    assert source.read == 5
    await stream.aclose()


async def test_shards_share_the_worker_budget_and_return_it_on_close() -> None:
    worker = ByteBudget(6 * MIB)
    limits = ReadAheadLimits(per_shard_bytes=4 * MIB, worker=worker)
    sources = [CountingSource(1 * MIB) for _ in range(3)]
    streams = [prefetch(s.items(), 64, size=len, limits=limits) for s in sources]
    for stream in streams:
        await anext(stream)
    await settle()
    # Not 12: the worker's 6 MiB hold the shards back, past it only one batch of a shard
    # that held nothing (no shard starves while others fill the budget).
    assert sum(s.read for s in sources) == 7
    assert worker.in_use == 7 * MIB
    assert worker.waits >= 1
    for stream in streams:
        await stream.aclose()
    assert worker.in_use == 0


async def test_a_batch_larger_than_the_budget_still_moves_its_shard() -> None:
    source = CountingSource(10 * MIB)
    stream = prefetch(source.items(), 2, size=len, limits=ReadAheadLimits(per_shard_bytes=1 * MIB))
    for _ in range(3):
        assert len(await anext(stream)) == 10 * MIB
    await stream.aclose()


async def test_cancelled_waiter_gives_no_bytes_away() -> None:
    budget = ByteBudget(10)
    await budget.reserve(8)
    waiter = asyncio.create_task(budget.reserve(5))
    await settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    budget.release(8)
    assert budget.in_use == 0
    await budget.reserve(10)
    assert budget.in_use == 10


async def test_waiters_are_served_in_order() -> None:
    budget = ByteBudget(10)
    await budget.reserve(10)
    order: list[int] = []

    async def take(size: int) -> None:
        await budget.reserve(size)
        order.append(size)

    tasks = [asyncio.create_task(take(size)) for size in (9, 1)]
    await settle()
    budget.release(10)
    await asyncio.gather(*tasks)
    assert order == [9, 1]


def test_memory_limit_from_cgroup_v2_and_v1(tmp_path: Path) -> None:
    v2 = tmp_path / "memory.max"
    v2.write_text("2147483648\n")
    assert memory_limit_bytes((v2,)) == 2 * 1024**3
    v2.write_text("max\n")
    assert memory_limit_bytes((v2,)) is None
    v1 = tmp_path / "memory.limit_in_bytes"
    v1.write_text("9223372036854771712\n")  # v1's "no limit"
    assert memory_limit_bytes((tmp_path / "absent", v1)) is None
    assert memory_limit_bytes((tmp_path / "absent",)) is None


def test_worker_budget_is_a_share_of_the_memory_limit() -> None:
    assert default_worker_budget(None) == DEFAULT_WORKER_BYTES
    assert default_worker_budget(2 * 1024**3) == 256 * MIB
    assert default_worker_budget(64 * MIB) == MIN_WORKER_BYTES


def test_polling_cuts_records_per_call_to_the_batch_byte_target() -> None:
    from consumer.records.batch import RawRecord
    from consumer.sources.polling import RecordLimit

    limit = RecordLimit(10_000, batch_bytes=4 * MIB)
    assert limit.next() == 2048  # nothing seen yet: records of 2 KiB assumed
    limit.saw([RawRecord(b"x" * 2048, str(n), 0, "k") for n in range(10)])
    assert limit.next() == 2048  # 4 MiB of 2 KiB records
    assert RecordLimit(10_000, batch_bytes=None).next() == 10_000
    huge = RecordLimit(10_000, batch_bytes=1024)
    huge.saw([RawRecord(b"x" * 5000, "1", 0, "k")])
    assert huge.next() == 1
