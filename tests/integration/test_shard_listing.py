"""One shard lister, every page (issue 16): ListShards against kinesis-mock with streams of
more shards than one page.

kinesis-mock is as strict as AWS here: it pages by MaxResults and refuses a NextToken call
that also names the stream ("You cannot specify this parameter [StreamName] if you specify the
NextToken parameter", ListShards, Amazon Kinesis API Reference). A real page holds up to 1,000
shards; a stream that large is too slow to create locally, so `SmallPages` asks for small pages
on every call, as a stream of more than 1,000 shards would need.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consumer.aws import AwsEndpoints
from consumer.aws.shards import KinesisShardLister, is_open, kinesis_shards, stream_ident
from consumer.compare.latency.shards import open_shard_ids
from consumer.local.sample_orders import create_source_table
from consumer.local.stack import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, LocalStackState
from consumer.replay.stream import oldest_arrival_ms
from consumer.settings import Settings
from tests.stack_helpers import new_stream, wait_stream_active

pytestmark = pytest.mark.integration

SHARDS = 5
MAX_HASH_KEY = 2**128 - 1


class SmallPages:
    """An aiobotocore Kinesis client whose ListShards pages hold at most `page` shards."""

    def __init__(self, client: Any, page: int) -> None:
        self._client = client
        self._page = page
        self.list_calls: list[dict[str, Any]] = []

    async def list_shards(self, **params: Any) -> Any:
        self.list_calls.append(params)
        return await self._client.list_shards(**{**params, "MaxResults": self._page})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _stream(endpoints: AwsEndpoints, name: str) -> Any:
    kinesis = endpoints.client("kinesis")
    new_stream(kinesis, name, SHARDS)
    wait_stream_active(kinesis, name)
    return kinesis


def _split_first(kinesis: Any, name: str) -> str:
    first = kinesis.list_shards(StreamName=name)["Shards"][0]
    low = int(first["HashKeyRange"]["StartingHashKey"])
    high = int(first["HashKeyRange"]["EndingHashKey"])
    kinesis.split_shard(
        StreamName=name, ShardToSplit=first["ShardId"], NewStartingHashKey=str((low + high) // 2)
    )
    wait_stream_active(kinesis, name)
    return str(first["ShardId"])


async def test_every_page_is_listed_and_later_pages_do_not_name_the_stream(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    _stream(endpoints, unique_name)
    async with endpoints.aio_client("kinesis") as client:
        paged = SmallPages(client, page=2)
        shards = await kinesis_shards(paged, stream_ident(unique_name))
    ids = [shard["ShardId"] for shard in shards]
    assert len(ids) == len(set(ids)) == SHARDS
    assert len(paged.list_calls) == 3  # 2 + 2 + 1
    assert all(set(call) == {"NextToken", "MaxResults"} for call in paged.list_calls[1:])


async def test_the_lease_lister_pages_with_a_filter_after_a_split(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    kinesis = _stream(endpoints, unique_name)
    parent = _split_first(kinesis, unique_name)
    stream_arn = kinesis.describe_stream_summary(StreamName=unique_name)[
        "StreamDescriptionSummary"
    ]["StreamARN"]
    async with endpoints.aio_client("kinesis") as client:
        lister = KinesisShardLister(SmallPages(client, 1), stream_arn=stream_arn)
        everything = await lister.list_shards()
        open_now = await KinesisShardLister(
            SmallPages(client, 1), stream_arn=stream_arn, shard_filter={"Type": "AT_LATEST"}
        ).list_shards()
    assert len(everything) == SHARDS + 2
    children = [shard for shard in everything if parent in shard.parent_shard_ids]
    assert len(children) == 2
    assert {shard.shard_id for shard in open_now} == {
        shard.shard_id for shard in everything if not shard.closed
    }
    assert parent not in {shard.shard_id for shard in open_now}


async def test_the_oldest_record_is_found_in_a_shard_past_the_first_page(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    """`replay` reads the oldest record of every shard: one in the last shard is not missed
    (the horizon check used to read ListShards' first page only)."""
    kinesis = _stream(endpoints, unique_name)
    last = max(
        kinesis.list_shards(StreamName=unique_name)["Shards"],
        key=lambda shard: int(shard["HashKeyRange"]["StartingHashKey"]),
    )
    kinesis.put_record(
        StreamName=unique_name, Data=b"x", PartitionKey="k", ExplicitHashKey=str(MAX_HASH_KEY)
    )
    stored = kinesis.get_records(
        ShardIterator=kinesis.get_shard_iterator(
            StreamName=unique_name, ShardId=last["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
    )["Records"]
    assert len(stored) == 1  # the record is in the last shard, and only there
    arn = kinesis.describe_stream_summary(StreamName=unique_name)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    async with endpoints.aio_client("kinesis") as client:
        oldest = await asyncio.wait_for(oldest_arrival_ms(SmallPages(client, 2), arn), 30)
    assert oldest == round(stored[0]["ApproximateArrivalTimestamp"].timestamp() * 1000)


def _latency_settings(stack: LocalStackState, stream: dict[str, Any]) -> Settings:
    aws = {
        "endpoint_kinesis": stack.kinesis_url,
        "endpoint_dynamodbstreams": stack.moto_url,
        "access_key_id": LOCAL_ACCESS_KEY_ID,
        "secret_access_key": LOCAL_SECRET_ACCESS_KEY,
    }
    return Settings(application="shard-listing", aws=aws, stream=stream)


def test_the_latency_warm_up_waits_for_the_open_shards_of_either_stream(
    local_stack: LocalStackState, endpoints: AwsEndpoints, unique_name: str
) -> None:
    kinesis = _stream(endpoints, unique_name)
    parent = _split_first(kinesis, unique_name)
    kinesis_mode = _latency_settings(local_stack, {"mode": "polling", "name": unique_name})
    opened = open_shard_ids(kinesis_mode)
    assert len(opened) == SHARDS + 1 and parent not in opened
    table_stream = create_source_table(endpoints.client("dynamodb"), unique_name)
    streams_mode = {"mode": "streams", "dynamodb_stream_arn": table_stream}
    assert len(open_shard_ids(_latency_settings(local_stack, streams_mode))) == 1


def test_is_open_reads_the_ending_sequence_number() -> None:
    assert is_open({"SequenceNumberRange": {"StartingSequenceNumber": "1"}})
    assert not is_open(
        {"SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"}}
    )
