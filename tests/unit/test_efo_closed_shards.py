"""ClosedShardCheck: shard end decided from ListShards (every page) and one GetRecords, against
an in-memory Kinesis that answers those three calls the way the API reference describes
(ListShards pages with NextToken and no stream name after the first page; a closed shard's
GetRecords at its end has no NextShardIterator and lists ChildShards)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consumer.sources.closed_shards import ClosedShardCheck
from consumer.sources.model import StartPosition

STREAM_ARN = "arn:aws:kinesis:us-east-1:000000000000:stream/s"


def shard(shard_id: str, parent: str | None = None, closed: bool = False) -> dict[str, Any]:
    numbers = {"StartingSequenceNumber": "1"}
    if closed:
        numbers["EndingSequenceNumber"] = "99"
    listed: dict[str, Any] = {"ShardId": shard_id, "SequenceNumberRange": numbers}
    if parent:
        listed["ParentShardId"] = parent
    return listed


@dataclass
class PagedKinesis:
    shards: list[dict[str, Any]]
    page_size: int = 2
    records_left: bool = False
    child_shards_in_get_records: bool = True
    calls: list[str] = field(default_factory=list)

    async def list_shards(self, **params: Any) -> dict[str, Any]:
        self.calls.append("ListShards")
        if "NextToken" in params:
            assert "StreamARN" not in params and "StreamName" not in params
            start = int(params["NextToken"])
        else:
            assert params["StreamARN"] == STREAM_ARN
            start = 0
        page: dict[str, Any] = {"Shards": self.shards[start : start + self.page_size]}
        if start + self.page_size < len(self.shards):
            page["NextToken"] = str(start + self.page_size)
        return page

    async def get_shard_iterator(self, **params: Any) -> dict[str, Any]:
        self.calls.append("GetShardIterator")
        return {"ShardIterator": f"it-{params['ShardId']}-{params['ShardIteratorType']}"}

    async def get_records(self, **params: Any) -> dict[str, Any]:
        self.calls.append("GetRecords")
        if self.records_left:
            return {"Records": [{"SequenceNumber": "50"}], "NextShardIterator": "next"}
        page: dict[str, Any] = {"Records": [], "MillisBehindLatest": 0}
        if self.child_shards_in_get_records:
            page["ChildShards"] = [{"ShardId": "shardId-000000000004"}]
        return page


LISTING = [
    shard("shardId-000000000000"),
    shard("shardId-000000000001"),
    shard("shardId-000000000002", closed=True),  # on the second page
    shard("shardId-000000000003", parent="shardId-000000000002"),
    shard("shardId-000000000004", parent="shardId-000000000002"),
]
AFTER = StartPosition.after("42")


async def test_an_open_shard_is_not_ended_and_costs_no_get_records() -> None:
    kinesis = PagedKinesis(LISTING)
    state = await ClosedShardCheck(kinesis, STREAM_ARN).state("shardId-000000000000", AFTER)
    assert not state.closed and state.children is None
    assert "GetRecords" not in kinesis.calls


async def test_a_closed_shard_on_a_later_page_with_records_left_is_not_ended() -> None:
    kinesis = PagedKinesis(LISTING, records_left=True)
    state = await ClosedShardCheck(kinesis, STREAM_ARN).state("shardId-000000000002", AFTER)
    assert state.closed and state.children is None
    assert kinesis.calls.count("ListShards") == 3


async def test_a_closed_shard_read_to_its_end_names_the_children_get_records_gives() -> None:
    kinesis = PagedKinesis(LISTING)
    state = await ClosedShardCheck(kinesis, STREAM_ARN).state("shardId-000000000002", AFTER)
    assert state.children == ("shardId-000000000004",)


async def test_without_child_shards_in_get_records_the_listed_children_are_used() -> None:
    kinesis = PagedKinesis(LISTING, child_shards_in_get_records=False)
    state = await ClosedShardCheck(kinesis, STREAM_ARN).state("shardId-000000000002", AFTER)
    assert state.children == ("shardId-000000000003", "shardId-000000000004")


async def test_the_listing_is_shared_between_checks_within_its_lifetime() -> None:
    kinesis = PagedKinesis(LISTING, page_size=10)
    check = ClosedShardCheck(kinesis, STREAM_ARN, listing_ttl_s=60)
    for shard_id in ("shardId-000000000000", "shardId-000000000001", "shardId-000000000003"):
        await check.state(shard_id, AFTER)
    assert kinesis.calls.count("ListShards") == 1
