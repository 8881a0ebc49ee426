"""Polling and enhanced fan-out readers against kinesis-mock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from consumer.aws import AwsEndpoints
from consumer.sources.efo import EfoReader
from consumer.sources.initial_response import install_subscription_stream
from consumer.sources.lean import install_lean_get_records
from consumer.sources.model import ShardGoneError, StartPosition
from consumer.sources.polling import PollingOptions, PollingReader
from consumer.sources.prefetch import prefetch
from consumer.sources.registration import ensure_stream_consumer
from tests.stack_helpers import (
    collect,
    drain,
    new_stream,
    numbers,
    put_numbered,
    wait_stream_active,
)

pytestmark = pytest.mark.integration

FAST = PollingOptions(interval_s=0.2)


async def _with_client(endpoints: AwsEndpoints, body: Any, timeout_s: float = 60) -> Any:
    async with endpoints.aio_client("kinesis") as client:
        install_lean_get_records(client)
        install_subscription_stream(client)
        return await asyncio.wait_for(body(client), timeout_s)


def _shard_ids(kinesis: Any, stream: str) -> list[str]:
    return [s["ShardId"] for s in kinesis.list_shards(StreamName=stream)["Shards"]]


async def test_polling_reads_every_record_in_order(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    kinesis = endpoints.client("kinesis")
    arn = new_stream(kinesis, unique_name)
    put_numbered(kinesis, unique_name, 0, 1200)
    shard = _shard_ids(kinesis, unique_name)[0]

    async def body(client: Any) -> list[int]:
        reader = PollingReader(client, arn, PollingOptions(interval_s=0.2, limit=500))
        records, _ = await collect(reader.read(shard, StartPosition.trim_horizon()), 1200)
        return numbers(records)

    assert await _with_client(endpoints, body) == list(range(1200))


async def test_polling_resumes_after_a_checkpoint_and_at_timestamp(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    kinesis = endpoints.client("kinesis")
    arn = new_stream(kinesis, unique_name)
    put_numbered(kinesis, unique_name, 0, 10)
    await asyncio.sleep(1.1)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.1)
    put_numbered(kinesis, unique_name, 10, 10)
    shard = _shard_ids(kinesis, unique_name)[0]

    async def body(client: Any) -> tuple[list[int], list[int], list[int]]:
        reader = PollingReader(client, arn, FAST)
        first, _ = await collect(reader.read(shard, StartPosition.trim_horizon()), 5)
        checkpoint = first[4].sequence_number
        after, _ = await collect(reader.read(shard, StartPosition.after(checkpoint)), 15)
        since, _ = await collect(reader.read(shard, StartPosition.at_timestamp(middle)), 10)
        return numbers(first[:5]), numbers(after), numbers(since)

    first, after, since = await _with_client(endpoints, body)
    assert first == [0, 1, 2, 3, 4]
    assert after == list(range(5, 20))
    assert since == list(range(10, 20))


async def test_latest_skips_history(endpoints: AwsEndpoints, unique_name: str) -> None:
    kinesis = endpoints.client("kinesis")
    arn = new_stream(kinesis, unique_name)
    put_numbered(kinesis, unique_name, 0, 5)
    shard = _shard_ids(kinesis, unique_name)[0]

    async def body(client: Any) -> list[int]:
        reader = PollingReader(client, arn, FAST)
        stream = reader.read(shard, StartPosition.latest())
        first = await anext(stream)  # the iterator is positioned at the tip now
        put_numbered(kinesis, unique_name, 100, 3)
        records, _ = await collect(stream, 3)
        await stream.aclose()
        return numbers(list(first.records) + records)

    assert await _with_client(endpoints, body) == [100, 101, 102]


async def test_split_and_merge_read_through_polling_parents_then_children(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    kinesis = endpoints.client("kinesis")
    arn = new_stream(kinesis, unique_name, shards=1)
    put_numbered(kinesis, unique_name, 0, 20, key="same")
    parent = _shard_ids(kinesis, unique_name)[0]
    kinesis.split_shard(StreamName=unique_name, ShardToSplit=parent, NewStartingHashKey=str(2**127))
    wait_stream_active(kinesis, unique_name)
    put_numbered(kinesis, unique_name, 20, 20, key="same")

    async def body(client: Any) -> tuple[list[int], tuple[str, ...] | None, list[int]]:
        reader = PollingReader(client, arn, FAST)
        parent_records, batches = await collect(
            reader.read(parent, StartPosition.trim_horizon()), 10_000
        )
        children = batches[-1].child_shard_ids
        assert children is not None and len(children) == 2
        child_records = []
        for child in children:
            # All records share one key, so one child has them all and the other none.
            records, _ = await drain(reader.read(child, StartPosition.trim_horizon()))
            child_records.extend(records)
        return numbers(parent_records), children, sorted(numbers(child_records))

    parent_numbers, children, child_numbers = await _with_client(endpoints, body)
    assert parent_numbers == list(range(20))
    assert child_numbers == list(range(20, 40))

    # Merge the two children back: both end, and name the merged shard as their child.
    assert children is not None
    kinesis.merge_shards(
        StreamName=unique_name, ShardToMerge=children[0], AdjacentShardToMerge=children[1]
    )
    wait_stream_active(kinesis, unique_name)

    async def ends(client: Any) -> set[tuple[str, ...] | None]:
        reader = PollingReader(client, arn, FAST)
        ends = set()
        for child in children:
            _, batches = await collect(reader.read(child, StartPosition.trim_horizon()), 10_000)
            ends.add(batches[-1].child_shard_ids)
        return ends

    merged = await _with_client(endpoints, ends)
    assert len(merged) == 1
    (merged_children,) = merged
    assert merged_children is not None and len(merged_children) == 1


async def test_unknown_shard_raises_shard_gone(endpoints: AwsEndpoints, unique_name: str) -> None:
    kinesis = endpoints.client("kinesis")
    arn = new_stream(kinesis, unique_name)

    async def body(client: Any) -> None:
        reader = PollingReader(client, arn, FAST)
        await collect(reader.read("shardId-000000000099", StartPosition.trim_horizon()), 1)

    with pytest.raises(ShardGoneError):
        await _with_client(endpoints, body)


async def test_efo_registers_idempotently_and_reads_every_record(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    kinesis = endpoints.client("kinesis")
    arn = new_stream(kinesis, unique_name, shards=2)
    put_numbered(kinesis, unique_name, 0, 400)
    shards = _shard_ids(kinesis, unique_name)

    async def body(client: Any) -> tuple[list[int], str, str]:
        first_arn, second_arn = await asyncio.gather(
            ensure_stream_consumer(client, arn, "app"), ensure_stream_consumer(client, arn, "app")
        )
        reader = EfoReader(client, first_arn)
        got: list[int] = []
        for shard in shards:
            stream = prefetch(reader.read(shard, StartPosition.trim_horizon()), max_batches=2)
            records, _ = await drain(stream)
            got.extend(numbers(records))
        return got, first_arn, second_arn

    async def until_all(client: Any) -> tuple[list[int], str, str]:
        return await asyncio.wait_for(body(client), 60)

    got, first_arn, second_arn = await _with_client(endpoints, until_all)
    assert first_arn == second_arn
    described = kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]
    assert [c["ConsumerName"] for c in described] == ["app"]
    assert sorted(got) == list(range(400))


async def test_efo_resumes_from_checkpoint_without_repeats(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    kinesis = endpoints.client("kinesis")
    arn = new_stream(kinesis, unique_name)
    put_numbered(kinesis, unique_name, 0, 30)
    shard = _shard_ids(kinesis, unique_name)[0]

    async def body(client: Any) -> tuple[list[int], list[int]]:
        consumer_arn = await ensure_stream_consumer(client, arn, "resume")
        reader = EfoReader(client, consumer_arn)
        first_stream = reader.read(shard, StartPosition.trim_horizon())
        first, _ = await collect(first_stream, 30, stop_at_shard_end=False)
        await first_stream.aclose()
        put_numbered(kinesis, unique_name, 30, 10)
        resumed_stream = reader.read(shard, StartPosition.after(first[-1].sequence_number))
        resumed, _ = await collect(resumed_stream, 10, stop_at_shard_end=False)
        await resumed_stream.aclose()
        return numbers(first), numbers(resumed)

    first, resumed = await asyncio.wait_for(_with_client(endpoints, body), 60)
    assert first == list(range(30))
    assert resumed == list(range(30, 40))
