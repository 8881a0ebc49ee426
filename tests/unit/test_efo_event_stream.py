"""EFO paths no emulator covers, through the real aiobotocore client and botocore's parser:
AWS's initial-response, its absence (kinesis-mock), ChildShards at shard end, in-stream errors,
renewals without skips or repeats, and the subscribe-time error codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from consumer.aws import AwsEndpoints
from consumer.records.batch import ReadBatch
from consumer.sources.efo import EfoReader
from consumer.sources.initial_response import install_subscription_stream
from consumer.sources.model import EfoUnavailableError, ShardGoneError, StartKind, StartPosition
from tests.fake_event_stream import (
    INITIAL_RESPONSE,
    FakeKinesis,
    Script,
    exception_frame,
    record,
    serve,
    shard_event,
)

CONSUMER_ARN = "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1"
SHARD = "shardId-000000000000"


class FakeKinesisWithConsumer(FakeKinesis):
    """The scripted SubscribeToShard, plus DescribeStreamConsumer saying the consumer is
    ACTIVE: so a ResourceNotFoundException is about the shard, not the consumer."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("X-Amz-Target", "").endswith("DescribeStreamConsumer"):
            return web.json_response(
                {
                    "ConsumerDescription": {
                        "ConsumerName": "c",
                        "ConsumerARN": CONSUMER_ARN,
                        "ConsumerStatus": "ACTIVE",
                        "ConsumerCreationTimestamp": 1_700_000_000,
                        "StreamARN": CONSUMER_ARN.split("/consumer/")[0],
                    }
                },
                content_type="application/x-amz-json-1.1",
            )
        return await super().handle(request)


async def read_all(
    script: Script, limit: int = 100, chunk_size: int | None = None
) -> tuple[list[ReadBatch], FakeKinesis]:
    fake = FakeKinesisWithConsumer(script, chunk_size=chunk_size)
    batches: list[ReadBatch] = []
    async with serve(fake) as url:
        endpoints = AwsEndpoints(
            endpoint_urls={"kinesis": url}, access_key_id="a", secret_access_key="b"
        )
        async with endpoints.aio_client("kinesis") as client:
            install_subscription_stream(client)
            reader = EfoReader(
                client, CONSUMER_ARN, min_subscribe_interval_s=0.05, in_use_wait_s=0.1
            )
            stream: AsyncIterator[ReadBatch] = reader.read(SHARD, StartPosition.trim_horizon())
            async for batch in stream:
                batches.append(batch)
                if len(batches) >= limit:
                    break
    return batches, fake


def sequences(batches: list[ReadBatch]) -> list[int]:
    return [int(r.sequence_number) for b in batches for r in b.records]


@pytest.mark.parametrize("with_initial_response", [True, False], ids=["aws", "kinesis-mock"])
async def test_first_event_is_kept_with_or_without_initial_response(
    with_initial_response: bool,
) -> None:
    def script(call: int, body: dict[str, Any]) -> tuple[int, list[bytes]]:
        frames = [shard_event([record(1, b"a"), record(2, b"b")], "2")]
        frames.append(shard_event([], None, child_shards=["shardId-000000000001"]))
        return 200, ([INITIAL_RESPONSE] if with_initial_response else []) + frames

    batches, _ = await read_all(script)
    assert [r.data for r in batches[0].records] == [b"a", b"b"]
    assert batches[-1].shard_end
    assert batches[-1].child_shard_ids == ("shardId-000000000001",)


async def test_frames_split_across_tiny_chunks_decode_the_same() -> None:
    def script(call: int, body: dict[str, Any]) -> tuple[int, list[bytes]]:
        return 200, [
            shard_event([record(i, bytes([i])) for i in range(1, 6)], "5"),
            shard_event([], None, child_shards=["c1", "c2"]),
        ]

    batches, _ = await read_all(script, chunk_size=3)
    assert sequences(batches) == [1, 2, 3, 4, 5]
    assert batches[-1].child_shard_ids == ("c1", "c2")


async def test_renewal_resumes_after_continuation_without_skips_or_repeats() -> None:
    def script(call: int, body: dict[str, Any]) -> tuple[int, list[bytes]]:
        if call == 1:
            # Subscription ends (5-minute lifetime) after two events.
            return 200, [shard_event([record(1, b"1"), record(2, b"2")], "2"), shard_event([], "3")]
        if call == 2:
            # A server that resent record 2 must not make us deliver it twice.
            return 200, [
                shard_event([record(2, b"2"), record(4, b"4")], "4"),
                shard_event([], None, child_shards=[]),
            ]
        raise AssertionError("no third subscription expected")

    batches, fake = await read_all(script)
    assert sequences(batches) == [1, 2, 4]
    assert fake.calls[0]["StartingPosition"] == {"Type": "TRIM_HORIZON"}
    assert fake.calls[1]["StartingPosition"] == {
        "Type": StartKind.AFTER_SEQUENCE_NUMBER.value,
        "SequenceNumber": "3",
    }
    assert batches[-1].shard_end and batches[-1].child_shard_ids == ()


async def test_in_stream_internal_failure_resubscribes_from_last_position() -> None:
    def script(call: int, body: dict[str, Any]) -> tuple[int, list[bytes]]:
        if call == 1:
            return 200, [shard_event([record(1, b"1")], "1"), exception_frame("InternalFailure")]
        return 200, [shard_event([record(2, b"2")], None, child_shards=[])]

    batches, fake = await read_all(script)
    assert sequences(batches) == [1, 2]
    assert fake.calls[1]["StartingPosition"]["SequenceNumber"] == "1"


async def test_in_stream_resource_not_found_means_the_shard_is_gone() -> None:
    def script(call: int, body: dict[str, Any]) -> tuple[int, list[bytes]]:
        return 200, [exception_frame("ResourceNotFoundException", "shard deleted")]

    with pytest.raises(ShardGoneError, match="shard deleted"):
        await read_all(script)


async def test_resource_in_use_at_subscribe_is_retried() -> None:
    def script(call: int, body: dict[str, Any]) -> tuple[int, list[bytes]]:
        if call == 1:
            return 400, [b"ResourceInUseException"]
        return 200, [shard_event([record(7, b"x")], None, child_shards=[])]

    batches, fake = await read_all(script)
    assert sequences(batches) == [7]
    assert len(fake.calls) == 2


async def test_limit_exceeded_at_subscribe_is_retried() -> None:
    def script(call: int, body: dict[str, Any]) -> tuple[int, list[bytes]]:
        if call == 1:
            return 400, [b"LimitExceededException"]
        return 200, [shard_event([record(8, b"y")], None, child_shards=[])]

    batches, _ = await read_all(script)
    assert sequences(batches) == [8]


async def test_access_denied_raises_efo_unavailable() -> None:
    def script(call: int, body: dict[str, Any]) -> tuple[int, list[bytes]]:
        return 400, [b"AccessDeniedException"]

    with pytest.raises(EfoUnavailableError):
        await read_all(script)


async def test_subscribe_resource_not_found_raises_shard_gone() -> None:
    def script(call: int, body: dict[str, Any]) -> tuple[int, list[bytes]]:
        return 400, [b"ResourceNotFoundException"]

    with pytest.raises(ShardGoneError):
        await read_all(script)


async def test_connection_cut_mid_stream_resubscribes() -> None:
    def script(call: int, body: dict[str, Any]) -> tuple[int, list[bytes]]:
        if call == 1:
            # A truncated frame: the connection ends in the middle of an event.
            return 200, [
                shard_event([record(1, b"1")], "1"),
                shard_event([record(2, b"2")], "2")[:20],
            ]
        return 200, [shard_event([record(2, b"2")], None, child_shards=[])]

    batches, fake = await read_all(script)
    assert sequences(batches) == [1, 2]
    assert len(fake.calls) == 2


async def test_in_stream_resource_in_use_is_retried_at_the_call_rate_not_backed_off() -> None:
    """kinesis-mock accepts the call and then refuses inside the stream while it holds a dead
    owner's subscription (AWS refuses the call itself, for at most 5 s). Each refusal is
    retried after the in-use pause, without the growing error backoff."""

    def script(call: int, body: dict[str, Any]) -> tuple[int, list[bytes]]:
        if call <= 4:
            return 200, [exception_frame("ResourceInUseException", "Another active subscription")]
        return 200, [shard_event([record(5, b"5")], None, child_shards=[])]

    fake = FakeKinesisWithConsumer(script)
    async with serve(fake) as url:
        endpoints = AwsEndpoints(
            endpoint_urls={"kinesis": url}, access_key_id="a", secret_access_key="b"
        )
        async with endpoints.aio_client("kinesis") as client:
            install_subscription_stream(client)
            reader = EfoReader(
                client, CONSUMER_ARN, min_subscribe_interval_s=0.05, in_use_wait_s=0.1
            )
            batches = [b async for b in reader.read(SHARD, StartPosition.trim_horizon())]
    assert sequences(batches) == [5]
    assert reader.in_use_retries == 4
    assert reader.resubscribes_after_error == 0
