"""Small helpers for integration tests on the local stack."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from consumer.local.sample_orders import create_kinesis_stream
from consumer.records.batch import RawRecord, ReadBatch


def new_stream(kinesis: Any, name: str, shards: int = 1) -> str:
    return create_kinesis_stream(kinesis, name, shards)


def put_numbered(kinesis: Any, stream: str, start: int, count: int, key: str | None = None) -> None:
    """Puts records whose data is their number, `start` .. `start + count - 1`."""
    for first in range(start, start + count, 500):
        last = min(first + 500, start + count)
        kinesis.put_records(
            StreamName=stream,
            Records=[
                {"Data": str(n).encode(), "PartitionKey": key or f"k{n}"}
                for n in range(first, last)
            ],
        )


def wait_stream_active(kinesis: Any, stream: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        if status["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.1)
    raise TimeoutError(f"stream {stream} not ACTIVE after {timeout_s} s")


async def collect(
    batches: AsyncIterator[ReadBatch], want: int, stop_at_shard_end: bool = True
) -> tuple[list[RawRecord], list[ReadBatch]]:
    """Reads until `want` records arrived (or the shard ended)."""
    records: list[RawRecord] = []
    seen: list[ReadBatch] = []
    async for batch in batches:
        seen.append(batch)
        records.extend(batch.records)
        if len(records) >= want or (stop_at_shard_end and batch.shard_end):
            break
    return records, seen


def numbers(records: list[RawRecord]) -> list[int]:
    return [int(r.data) for r in records]


async def drain(batches: AsyncIterator[ReadBatch]) -> tuple[list[RawRecord], list[ReadBatch]]:
    """Reads until the shard ends or the reader is caught up (an empty batch at the tip)."""
    records: list[RawRecord] = []
    seen: list[ReadBatch] = []
    async for batch in batches:
        seen.append(batch)
        records.extend(batch.records)
        if batch.shard_end or (not batch.records and not batch.millis_behind_latest):
            break
    aclose = getattr(batches, "aclose", None)
    if aclose is not None:
        await aclose()
    return records, seen
