"""DynamoDB Streams shards, every page: DescribeStream returns at most `Limit` shards (100 by
default) and `LastEvaluatedShardId`; the next call passes it as `ExclusiveStartShardId`
(DescribeStream, Amazon DynamoDB Streams API Reference). moto's table streams have one shard,
so a double that pages like the API does stands in."""

from __future__ import annotations

from typing import Any

from consumer.aws.shards import StreamsShardLister, streams_shards

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000"
SHARDS = [
    {
        "ShardId": "s0",
        "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "5"},
    },
    {
        "ShardId": "s1",
        "ParentShardId": "s0",
        "SequenceNumberRange": {"StartingSequenceNumber": "6"},
    },
    {"ShardId": "s2", "SequenceNumberRange": {"StartingSequenceNumber": "7"}},
]


class PagedStreams:
    """DescribeStream in pages of two shards, checking each call names the stream."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def describe_stream(self, **params: Any) -> dict[str, Any]:
        assert params["StreamArn"] == ARN
        self.calls.append(params)
        after = params.get("ExclusiveStartShardId")
        start = 0 if after is None else [s["ShardId"] for s in SHARDS].index(after) + 1
        page = SHARDS[start : start + 2]
        description: dict[str, Any] = {"StreamArn": ARN, "Shards": page}
        if start + 2 < len(SHARDS):
            description["LastEvaluatedShardId"] = page[-1]["ShardId"]
        return {"StreamDescription": description}


async def test_every_describe_stream_page_is_read() -> None:
    client = PagedStreams()
    shards = await streams_shards(client, ARN)
    assert [shard["ShardId"] for shard in shards] == ["s0", "s1", "s2"]
    assert client.calls == [{"StreamArn": ARN}, {"StreamArn": ARN, "ExclusiveStartShardId": "s1"}]


async def test_the_streams_lister_gives_parents_and_closed_shards() -> None:
    listed = await StreamsShardLister(PagedStreams(), ARN).list_shards()
    assert [(s.shard_id, s.parent_shard_ids, s.closed) for s in listed] == [
        ("s0", frozenset(), True),
        ("s1", frozenset({"s0"}), False),
        ("s2", frozenset(), False),
    ]
