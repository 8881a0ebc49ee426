"""Shard discovery: which leases to create (parents first), record and clean up."""

from __future__ import annotations

from typing import Any

from checkpoints.discovery import ShardInfo, children_to_record, plan_cleanup, plan_new_leases
from checkpoints.model import Checkpoint, Lease
from consumer.aws.shards import KinesisShardLister, shard_info

# A stream that was split and merged: s0 -> (s2, s3); s1 + s2 -> s4. s3 and s4 are open.
STREAM = [
    ShardInfo("s0", closed=True),
    ShardInfo("s1", closed=True),
    ShardInfo("s2", frozenset({"s0"}), closed=True),
    ShardInfo("s3", frozenset({"s0"})),
    ShardInfo("s4", frozenset({"s1", "s2"})),
]
AT_TS = Checkpoint.at_timestamp(1_700_000_000_000)


def starts(leases: list[Lease]) -> dict[str, str]:
    return {lease.key: str(lease.checkpoint) for lease in leases}


def test_first_start_at_trim_horizon_leases_every_shard_parents_first() -> None:
    created = plan_new_leases(list(reversed(STREAM)), [], Checkpoint.trim_horizon())
    order = [lease.key for lease in created]
    assert sorted(order) == ["s0", "s1", "s2", "s3", "s4"]
    for lease in created:
        for parent in lease.parent_shard_ids:
            assert order.index(parent) < order.index(lease.key)
        assert lease.checkpoint == Checkpoint.trim_horizon()
        assert lease.owner is None
    assert next(x for x in created if x.key == "s4").parent_shard_ids == {"s1", "s2"}


def test_first_start_at_latest_leases_only_open_shards() -> None:
    created = plan_new_leases(STREAM, [], Checkpoint.latest())
    assert starts(created) == {"s3": "LATEST", "s4": "LATEST"}


def test_first_start_at_timestamp_gives_children_the_same_timestamp() -> None:
    created = plan_new_leases(STREAM, [], AT_TS)
    assert set(starts(created).values()) == {str(AT_TS)}


def test_a_child_of_a_running_shard_starts_at_trim_horizon() -> None:
    existing = [Lease("s3", "s3"), Lease("s4", "s4", owner="w")]
    split = [*STREAM, ShardInfo("s5", frozenset({"s4"})), ShardInfo("s6", frozenset({"s4"}))]
    created = plan_new_leases(split, existing, Checkpoint.latest())
    assert starts(created) == {"s5": "TRIM_HORIZON", "s6": "TRIM_HORIZON"}


def test_grandchildren_found_in_one_listing_start_at_trim_horizon_too() -> None:
    existing = [Lease("s3", "s3"), Lease("s4", "s4")]
    shards = [
        *STREAM,
        ShardInfo("s5", frozenset({"s4"}), closed=True),
        ShardInfo("s7", frozenset({"s5"})),
    ]
    created = plan_new_leases(shards, existing, Checkpoint.latest())
    assert starts(created) == {"s5": "TRIM_HORIZON", "s7": "TRIM_HORIZON"}


def test_history_before_a_latest_start_gets_no_lease_later_either() -> None:
    existing = [Lease("s3", "s3"), Lease("s4", "s4")]
    assert plan_new_leases(STREAM, existing, Checkpoint.latest()) == []


def test_a_half_done_first_start_is_completed() -> None:
    existing = [Lease("s0", "s0"), Lease("s2", "s2", parent_shard_ids=frozenset({"s0"}))]
    created = plan_new_leases(STREAM, existing, Checkpoint.trim_horizon())
    assert starts(created) == {"s1": "TRIM_HORIZON", "s3": "TRIM_HORIZON", "s4": "TRIM_HORIZON"}


def test_children_are_recorded_on_their_parents() -> None:
    leases = [Lease("s0", "s0", child_shard_ids=frozenset({"s2"})), Lease("s1", "s1")]
    assert children_to_record(STREAM, leases) == {"s0": {"s3"}, "s1": {"s4"}}


def test_cleanup_deletes_finished_leases_past_retention_whose_children_have_leases() -> None:
    end = Checkpoint.shard_end()
    leases = [
        Lease("old", "old", checkpoint=end, child_shard_ids=frozenset({"s0", "s1"})),
        Lease("old-orphan-child", "old-orphan-child", checkpoint=end,
              child_shard_ids=frozenset({"never-leased"})),
        Lease("s0", "s0", checkpoint=end),  # finished but still listed: kept
        Lease("s1", "s1"),
        Lease("gone-running", "gone-running"),  # not finished: never deleted
    ]
    assert plan_cleanup(STREAM, leases) == ["old"]


def test_shard_info_reads_parents_and_closed() -> None:
    shard = shard_info(
        {
            "ShardId": "shardId-000000000004",
            "ParentShardId": "shardId-000000000001",
            "AdjacentParentShardId": "shardId-000000000002",
            "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"},
        }
    )
    assert shard == ShardInfo(
        "shardId-000000000004",
        frozenset({"shardId-000000000001", "shardId-000000000002"}),
        closed=True,
    )


class PagingKinesis:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def list_shards(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        page = int(params.get("NextToken", "0"))
        shards = [{"ShardId": f"shard-{page}-{i}", "SequenceNumberRange": {}} for i in range(2)]
        return {"Shards": shards, **({"NextToken": str(page + 1)} if page < 2 else {})}


async def test_list_shards_follows_next_token_without_the_stream_name() -> None:
    client = PagingKinesis()
    shards = await KinesisShardLister(client, stream_name="orders").list_shards()
    assert len(shards) == 6
    assert client.calls[0] == {"StreamName": "orders", "MaxResults": 1000}
    assert client.calls[1] == {"NextToken": "1", "MaxResults": 1000}
    assert all("StreamName" not in call for call in client.calls[1:])
