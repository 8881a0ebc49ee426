"""The open shards of the stream a mode reads, so the warm-up can wait until every one of
them is being read (readers start at LATEST: a probe in a shard not read yet would be lost)."""

from __future__ import annotations

import asyncio

from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.errors import error_code
from consumer.aws.shards import ApiShard, is_open, kinesis_shards, stream_ident, streams_shards
from consumer.compare.latency.environment import LatencyError
from consumer.settings import Settings


def open_shard_ids(settings: Settings) -> frozenset[str]:
    """The ids of the open shards of the Kinesis stream (efo, polling) or the DynamoDB stream
    (streams) the settings read. Blocking (not inside an event loop); raises LatencyError."""
    stream = settings.stream
    where = stream.dynamodb_stream_arn if stream.mode == "streams" else stream.arn or stream.name
    try:
        shards = asyncio.run(_shards(settings))
    except ClientError as error:
        raise LatencyError(f"cannot list the shards of {where}: {error_code(error)}") from error
    except BotoCoreError as error:
        raise LatencyError(f"cannot list the shards of {where}: {error}") from error
    return frozenset(shard["ShardId"] for shard in shards if is_open(shard))


async def _shards(settings: Settings) -> list[ApiShard]:
    endpoints = settings.aws.endpoints()
    stream = settings.stream
    if stream.mode == "streams":
        async with endpoints.aio_client("dynamodbstreams") as client:
            return await streams_shards(client, str(stream.dynamodb_stream_arn))
    async with endpoints.aio_client("kinesis") as client:
        return await kinesis_shards(client, stream_ident(stream.name, stream.arn))
