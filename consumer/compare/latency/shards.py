"""The open shards of the stream a mode reads, so the warm-up can wait until every one of
them is being read (readers start at LATEST: a probe in a shard not read yet would be lost)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.compare.latency.environment import LatencyError
from consumer.settings import Settings


def _open(shard: dict[str, Any]) -> bool:
    return "EndingSequenceNumber" not in shard.get("SequenceNumberRange", {})


def open_shard_ids(settings: Settings) -> frozenset[str]:
    """The ids of the open shards of the Kinesis stream (efo, polling) or the DynamoDB stream
    (streams) the settings read. Blocking (boto3); raises LatencyError."""
    stream = settings.stream
    where = stream.dynamodb_stream_arn if stream.mode == "streams" else stream.arn or stream.name
    try:
        shards = _shards(settings)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        raise LatencyError(f"cannot list the shards of {where}: {code or error}") from error
    except BotoCoreError as error:
        raise LatencyError(f"cannot list the shards of {where}: {error}") from error
    return frozenset(shard["ShardId"] for shard in shards if _open(shard))


def _shards(settings: Settings) -> list[dict[str, Any]]:
    endpoints = settings.aws.endpoints()
    stream = settings.stream
    shards: list[dict[str, Any]] = []
    if stream.mode == "streams":
        client = endpoints.client("dynamodbstreams")
        kwargs: dict[str, Any] = {"StreamArn": stream.dynamodb_stream_arn}
        while True:
            description = client.describe_stream(**kwargs)["StreamDescription"]
            shards.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            kwargs["ExclusiveStartShardId"] = last
    else:
        client = endpoints.client("kinesis")
        kwargs = {"StreamARN": stream.arn} if stream.arn else {"StreamName": stream.name}
        while True:
            page = client.list_shards(**kwargs)
            shards.extend(page.get("Shards", []))
            token = page.get("NextToken")
            if not token:
                break
            kwargs = {"NextToken": token}
    return shards
