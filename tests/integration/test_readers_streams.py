"""The DynamoDB Streams reader ("Streams mode") against moto."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from consumer.aws import AwsEndpoints
from consumer.aws.shards import StreamsShardLister
from consumer.local.sample_orders import create_source_table
from consumer.sources.model import StartPosition
from consumer.sources.streams import DynamoDBStreamsReader, install_lean_streams
from tests.stack_helpers import drain

pytestmark = pytest.mark.integration


async def test_streams_reader_reads_changes_in_order_with_wire_shape(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    dynamodb = endpoints.client("dynamodb")
    stream_arn = create_source_table(dynamodb, unique_name)
    for n in range(25):
        dynamodb.put_item(
            TableName=unique_name,
            Item={"pk": {"S": f"k{n % 5}"}, "n": {"N": str(n)}, "b": {"B": bytes([n])}},
        )
    dynamodb.delete_item(TableName=unique_name, Key={"pk": {"S": "k0"}})

    async def body() -> tuple[list[dict[str, Any]], int]:
        async with endpoints.aio_client("dynamodbstreams") as client:
            install_lean_streams(client)
            shards = await StreamsShardLister(client, stream_arn).list_shards()
            reader = DynamoDBStreamsReader(client, stream_arn, interval_s=0.25)
            records, _ = await drain(reader.read(shards[0].shard_id, StartPosition.trim_horizon()))
            return [orjson.loads(r.data) for r in records], len(shards)

    changes, shard_count = await asyncio.wait_for(body(), 60)
    assert shard_count == 1
    assert [c["eventName"] for c in changes] == ["INSERT"] * 5 + ["MODIFY"] * 20 + ["REMOVE"]
    assert [int(c["dynamodb"]["NewImage"]["n"]["N"]) for c in changes[:25]] == list(range(25))
    # Wire shape, as Lambda receives it: binaries in base64, times in epoch seconds.
    assert changes[0]["dynamodb"]["NewImage"]["b"] == {"B": "AA=="}
    assert isinstance(changes[0]["dynamodb"]["ApproximateCreationDateTime"], float | int)
    sequence_numbers = [int(c["dynamodb"]["SequenceNumber"]) for c in changes]
    assert sequence_numbers == sorted(sequence_numbers)


async def test_streams_reader_rejects_at_timestamp(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    from datetime import UTC, datetime

    dynamodb = endpoints.client("dynamodb")
    stream_arn = create_source_table(dynamodb, unique_name)
    async with endpoints.aio_client("dynamodbstreams") as client:
        shards = await StreamsShardLister(client, stream_arn).list_shards()
        reader = DynamoDBStreamsReader(client, stream_arn)
        with pytest.raises(ValueError, match="AT_TIMESTAMP"):
            await anext(
                reader.read(shards[0].shard_id, StartPosition.at_timestamp(datetime.now(UTC)))
            )
