"""Pure parts of `consumer leases`: listing states, activity checks, KCL import mapping."""

from __future__ import annotations

import pytest

from checkpoints.admin import compare_snapshots, lease_rows, reset_target
from checkpoints.kcl_import import KclImportError, kcl_leases_to_import
from checkpoints.model import Checkpoint, Lease, TableSnapshot, WorkerHeartbeat

END = Checkpoint.shard_end()


def test_rows_name_each_lease_state() -> None:
    snapshot = TableSnapshot(
        leases=(
            Lease("p", "p", checkpoint=END),
            Lease("c", "c", parent_shard_ids=frozenset({"p", "q"})),
            Lease("q", "q", owner="w1", checkpoint=Checkpoint.after("42")),
            Lease("r", "r", owner="w2", handoff_to="w1"),
            Lease("s", "s", owner="dead"),
            Lease("t", "t"),
        ),
        workers={"dead": WorkerHeartbeat("dead", 3, fenced_by="w1")},
    )
    states = {row.shard: (row.owner, row.checkpoint, row.parents, row.state)
              for row in lease_rows(snapshot)}
    assert states == {
        "p": ("-", "SHARD_END", "-", "finished"),
        "c": ("-", "TRIM_HORIZON", "p,q", "waiting-for-parents"),
        "q": ("w1", "42", "-", "owned"),
        "r": ("w2", "TRIM_HORIZON", "-", "handoff-to:w1"),
        "s": ("dead", "TRIM_HORIZON", "-", "owner-dead"),
        "t": ("-", "TRIM_HORIZON", "-", "unowned"),
    }


def test_activity_sees_moving_heartbeats_and_lease_counters() -> None:
    first = TableSnapshot(
        leases=(Lease("a", "a", counter=1), Lease("b", "b", counter=1)),
        workers={"w1": WorkerHeartbeat("w1", 5), "w2": WorkerHeartbeat("w2", 9)},
    )
    second = TableSnapshot(
        leases=(Lease("a", "a", counter=2), Lease("b", "b", counter=1)),
        workers={"w1": WorkerHeartbeat("w1", 6), "w2": WorkerHeartbeat("w2", 9)},
    )
    activity = compare_snapshots(first, second, recent_heartbeats=["w3"])
    assert activity.live_workers == {"w1", "w3"}
    assert activity.moving_leases == {"a"}
    assert compare_snapshots(second, second).idle


def test_reset_to_latest_leaves_finished_shards() -> None:
    assert reset_target(Lease("p", "p", checkpoint=END), Checkpoint.latest()) is None
    assert reset_target(Lease("p", "p", checkpoint=END), Checkpoint.trim_horizon()) is not None


def test_kcl_import_keeps_checkpoints_and_frees_the_leases() -> None:
    kcl = [
        Lease("shardId-1", "shardId-1", owner="kcl-w", counter=77,
              checkpoint=Checkpoint.after("123", 4), owner_switches=2,
              parent_shard_ids=frozenset({"shardId-0"})),
    ]
    (lease,), others = kcl_leases_to_import(kcl)
    assert others == []
    assert lease == Lease("shardId-1", "shardId-1", checkpoint=Checkpoint.after("123", 4),
                          parent_shard_ids=frozenset({"shardId-0"}))


def test_kcl_multi_stream_tables_need_a_stream() -> None:
    kcl = [
        Lease("123456789012:orders:1700000000:shardId-1", "shardId-1"),
        Lease("123456789012:users:1700000000:shardId-1", "shardId-1"),
    ]
    with pytest.raises(KclImportError, match="--stream"):
        kcl_leases_to_import(kcl)
    leases, others = kcl_leases_to_import(kcl, stream="orders")
    assert [lease.key for lease in leases] == ["shardId-1"]
    assert others == ["123456789012:users:1700000000:shardId-1"]


def test_kcl_at_timestamp_needs_the_time() -> None:
    kcl = [Lease("s", "s", checkpoint=Checkpoint.from_stored("AT_TIMESTAMP"))]
    with pytest.raises(KclImportError, match="--at-timestamp"):
        kcl_leases_to_import(kcl)
    (lease,), _ = kcl_leases_to_import(kcl, at_timestamp=Checkpoint.at_timestamp(5))
    assert lease.checkpoint.timestamp_ms == 5
