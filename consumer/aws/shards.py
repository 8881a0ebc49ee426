"""Listing shards, every page: Kinesis ListShards (NextToken) and DynamoDB Streams
DescribeStream (ExclusiveStartShardId). Shards come back as the API describes them, or as the
lease coordinator's `ShardInfo` through the two `ShardLister`s.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from checkpoints.discovery import ShardInfo
from checkpoints.retry import RetryPolicy, RetryStats, call_with_retry, error_code

# One shard as ListShards or DescribeStream describes it (ShardId, ParentShardId, ...).
ApiShard = dict[str, Any]


def is_open(shard: Mapping[str, Any]) -> bool:
    """No ending sequence number: the shard still takes new records."""
    return "EndingSequenceNumber" not in shard.get("SequenceNumberRange", {})


def shard_info(shard: Mapping[str, Any]) -> ShardInfo:
    parents = {shard.get("ParentShardId"), shard.get("AdjacentParentShardId")}
    return ShardInfo(
        shard_id=str(shard["ShardId"]),
        parent_shard_ids=frozenset(p for p in parents if p),
        closed=not is_open(shard),
    )


def stream_ident(stream_name: str | None = None, stream_arn: str | None = None) -> dict[str, str]:
    """ListShards' stream parameter: the ARN if known, else the name."""
    if stream_arn:
        return {"StreamARN": stream_arn}
    if stream_name:
        return {"StreamName": stream_name}
    raise ValueError("a stream name or ARN is needed to list shards")


async def kinesis_shards(
    client: Any,
    stream: Mapping[str, str],
    shard_filter: Mapping[str, Any] | None = None,
    *,
    retry: RetryPolicy | None = None,
    stats: RetryStats | None = None,
) -> list[ApiShard]:
    """Every shard ListShards returns for `stream` (see `stream_ident`), following NextToken.

    A call with NextToken must name neither the stream nor the ShardFilter (the token carries
    the whole request); an expired token restarts the listing. With `retry`, throttling and
    server errors are retried and counted in `stats` (then `LeaseTableUnavailable`); without,
    they are raised.
    """
    first: dict[str, Any] = {**stream, "MaxResults": 1000}
    if shard_filter is not None:
        first["ShardFilter"] = dict(shard_filter)
    counted = stats if stats is not None else RetryStats()
    for _ in range(3):  # NextToken expires after 300 s: restart the listing
        shards: list[ApiShard] = []
        params = first
        try:
            while True:
                call = functools.partial(client.list_shards, **params)
                page = await (call_with_retry(call, retry, counted) if retry else call())
                shards.extend(page.get("Shards", []))
                token = page.get("NextToken")
                if not token:
                    return shards
                params = {"NextToken": token, "MaxResults": 1000}
        except ClientError as error:
            if error_code(error) != "ExpiredNextTokenException":
                raise
            await asyncio.sleep(0.1)
    raise RuntimeError("ListShards: the listing kept expiring")


async def streams_shards(client: Any, stream_arn: str) -> list[ApiShard]:
    """Every shard of a DynamoDB stream, following DescribeStream's LastEvaluatedShardId."""
    shards: list[ApiShard] = []
    params: dict[str, Any] = {"StreamArn": stream_arn}
    while True:
        description = (await client.describe_stream(**params))["StreamDescription"]
        shards.extend(description.get("Shards", []))
        last = description.get("LastEvaluatedShardId")
        if not last:
            return shards
        params["ExclusiveStartShardId"] = last


class KinesisShardLister:
    """The lease coordinator's `ShardLister` for a Kinesis stream: ListShards with retries."""

    def __init__(
        self,
        client: Any,
        stream_name: str | None = None,
        stream_arn: str | None = None,
        retry: RetryPolicy | None = None,
        shard_filter: Mapping[str, Any] | None = None,
    ) -> None:
        """`shard_filter` is ListShards' ShardFilter (it goes with the first page only)."""
        self._client = client
        self._stream = stream_ident(stream_name, stream_arn)
        self._shard_filter = shard_filter
        self._retry = retry or RetryPolicy()
        self.stats = RetryStats()

    async def list_shards(self) -> list[ShardInfo]:
        shards = await kinesis_shards(
            self._client, self._stream, self._shard_filter, retry=self._retry, stats=self.stats
        )
        return [shard_info(shard) for shard in shards]


class StreamsShardLister:
    """The lease coordinator's `ShardLister` for a DynamoDB stream."""

    def __init__(self, client: Any, stream_arn: str) -> None:
        self._client = client
        self._stream_arn = stream_arn

    async def list_shards(self) -> list[ShardInfo]:
        return [shard_info(shard) for shard in await streams_shards(self._client, self._stream_arn)]
