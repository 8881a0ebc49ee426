"""Checkpoints, lease items in KCL's attribute names, and the parents-before-children rule."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from checkpoints.model import (
    Checkpoint,
    Lease,
    Position,
    WorkerHeartbeat,
    is_available,
    lease_from_item,
    lease_to_item,
    snapshot_from_items,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("TRIM_HORIZON", Checkpoint.trim_horizon()),
        ("LATEST", Checkpoint.latest()),
        ("SHARD_END", Checkpoint.shard_end()),
        ("AT_TIMESTAMP=1700000000000", Checkpoint.at_timestamp(1_700_000_000_000)),
        (
            "AT_TIMESTAMP=2023-11-14T22:13:20Z",
            Checkpoint.at_timestamp(datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ),
        ("AT_TIMESTAMP=2023-11-14T22:13:20", Checkpoint.at_timestamp(1_700_000_000_000)),
        ("4968062457668039308101405423", Checkpoint.after("4968062457668039308101405423")),
        ("123:4", Checkpoint.after("123", 4)),
    ],
)
def test_checkpoint_parse(text: str, expected: Checkpoint) -> None:
    assert Checkpoint.parse(text) == expected


@pytest.mark.parametrize("text", ["AT_TIMESTAMP", "EARLIEST", "12a", "AFTER_SEQUENCE_NUMBER"])
def test_checkpoint_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        Checkpoint.parse(text)


def test_checkpoints_order_sentinels_then_sequence_numbers_as_integers_then_shard_end() -> None:
    ordered = [
        Checkpoint.trim_horizon(),
        Checkpoint.after("9"),
        Checkpoint.after("10"),  # as strings "10" < "9": compare as integers
        Checkpoint.after("10", 1),
        Checkpoint.after("49680624576680393081014054230190529212693034810126368770"),
        Checkpoint.shard_end(),
    ]
    for earlier, later in itertools.pairwise(ordered):
        assert earlier.is_behind(later)
        assert not later.is_behind(earlier)
    assert not Checkpoint.latest().is_behind(Checkpoint.trim_horizon())


def test_lease_item_round_trip_uses_kcl_attribute_names() -> None:
    lease = Lease(
        key="shardId-000000000003",
        shard_id="shardId-000000000003",
        owner="w1",
        counter=7,
        checkpoint=Checkpoint.after("123", 2),
        pending_checkpoint=Checkpoint.after("130"),
        owner_switches=1,
        parent_shard_ids=frozenset({"shardId-000000000000"}),
        child_shard_ids=frozenset({"shardId-000000000005"}),
        handoff_to="w2",
    )
    item = lease_to_item(lease)
    assert item == {
        "leaseKey": {"S": "shardId-000000000003"},
        "leaseOwner": {"S": "w1"},
        "leaseCounter": {"N": "7"},
        "checkpoint": {"S": "123"},
        "checkpointSubSequenceNumber": {"N": "2"},
        "pendingCheckpoint": {"S": "130"},
        "pendingCheckpointSubSequenceNumber": {"N": "0"},
        "ownerSwitchesSinceCheckpoint": {"N": "1"},
        "parentShardId": {"SS": ["shardId-000000000000"]},
        "childShardIds": {"SS": ["shardId-000000000005"]},
        "handoffTo": {"S": "w2"},
    }
    assert lease_from_item(item) == lease


def test_at_timestamp_keeps_its_time() -> None:
    lease = Lease("s", "s", checkpoint=Checkpoint.at_timestamp(1_700_000_000_123))
    assert lease_from_item(lease_to_item(lease)).checkpoint.timestamp_ms == 1_700_000_000_123


def test_kcl_multi_stream_items_carry_the_shard_id() -> None:
    item = {
        "leaseKey": {"S": "123456789012:orders:1700000000:shardId-000000000001"},
        "shardId": {"S": "shardId-000000000001"},
        "checkpoint": {"S": "SHARD_END"},
        "leaseCounter": {"N": "40"},
    }
    lease = lease_from_item(item)
    assert lease.shard_id == "shardId-000000000001"
    assert lease.finished


def test_snapshot_separates_heartbeats_from_leases() -> None:
    items = [
        {"leaseKey": {"S": "s2"}, "leaseCounter": {"N": "1"}},
        {
            "leaseKey": {"S": "__worker__#w1"},
            "workerId": {"S": "w1"},
            "heartbeatCounter": {"N": "9"},
            "fencedBy": {"S": "w2"},
        },
        {"leaseKey": {"S": "s1"}, "leaseCounter": {"N": "1"}},
    ]
    snap = snapshot_from_items(items)
    assert [lease.key for lease in snap.leases] == ["s1", "s2"]
    assert snap.workers == {"w1": WorkerHeartbeat("w1", 9, fenced_by="w2")}


def test_a_lease_is_available_when_unfinished_and_every_parent_finished() -> None:
    done = Lease("p1", "p1", checkpoint=Checkpoint.shard_end())
    running = Lease("p2", "p2", owner="w")
    child = Lease("c", "c", parent_shard_ids=frozenset({"p1", "p2"}))
    orphan = Lease("o", "o", parent_shard_ids=frozenset({"cleaned-up"}))
    by_key = {lease.key: lease for lease in (done, running, child, orphan)}
    assert not is_available(child, by_key)
    assert is_available(orphan, by_key)
    assert not is_available(done, by_key)
    by_key["p2"] = Lease("p2", "p2", checkpoint=Checkpoint.shard_end())
    assert is_available(child, by_key)
    assert Checkpoint.at_timestamp(0).position is Position.AT_TIMESTAMP
