"""`consumer run` end to end on the local stack: the replica converges despite duplicates and
reordering, poison records reach the DLQ while the rest is applied, `dlq replay` brings them
back once the cause is fixed, and a sink outage holds the checkpoint and loses nothing."""

from __future__ import annotations

import time

import pytest

from consumer.local.bridge import BridgeOptions
from consumer.local.sample_orders import write_order_changes
from consumer.local.stack import LocalStackState
from consumer.service.dlq_admin import list_parked, replay_parked
from tests.service_harness import Deployment, by_key

pytestmark = pytest.mark.integration


def test_replica_converges_and_poison_records_are_parked_then_replayed(
    local_stack: LocalStackState, unique_name: str
) -> None:
    import asyncio

    app = Deployment(local_stack, unique_name)
    app.create()
    dynamodb = app.endpoints.client("dynamodb")
    write_order_changes(dynamodb, app.table, 150, seed=5)
    # A record the transform refuses (poison for replication) ...
    dynamodb.put_item(TableName=app.table, Item={"pk": {"S": "bad"}, "status": {"S": "NEW"}})
    stats = app.bridge(BridgeOptions(duplicate_rate=0.15, reorder_rate=0.3, seed=9))
    assert stats.duplicates > 0 and stats.reorderings > 0
    # ... and one that is not a DynamoDB change at all.
    app.endpoints.client("kinesis").put_record(
        StreamName=app.stream, Data=b"not a change record", PartitionKey="x"
    )
    transform = "CONSUMER_PIPELINES__REPLICATION__TRANSFORM"
    assert app.run_in_process(**{transform: "tests.replication_hooks:explode_on_bad"}) == 0

    source = by_key(app.source_items())
    replica = by_key(app.replica_items())
    assert set(source) - set(replica) == {"bad"}
    assert all(replica[key] == source[key] for key in replica)

    settings = app.settings()
    parked = asyncio.run(list_parked(settings, 10))
    assert sorted(m.record.pipeline for m in parked) == ["decode", "replication"]
    bad = next(m.record for m in parked if m.record.pipeline == "replication")
    assert "transform failed" in bad.error and bad.shard_id.startswith("shardId-")

    # The cause is fixed (no transform any more): replay applies it and removes it.
    report = asyncio.run(replay_parked(settings, 10))
    assert report.applied == 1
    assert report.failed == 1  # the undecodable record stays parked, and is reported
    assert "cannot be decoded" in report.errors[0]
    assert by_key(app.replica_items()) == by_key(app.source_items())
    remaining = asyncio.run(list_parked(settings, 10))
    assert [m.record.pipeline for m in remaining] == ["decode"]


def test_a_sink_outage_holds_the_checkpoint_and_loses_nothing(
    local_stack: LocalStackState, unique_name: str
) -> None:
    app = Deployment(local_stack, unique_name, shards=1)
    app.create()  # the replica exists at start (the start-up checks require it) ...
    worker = app.spawn_worker(until_idle_s=None)
    try:
        deadline = time.monotonic() + 60
        leases: list[dict[str, object]] = []
        while time.monotonic() < deadline and not leases:
            try:
                leases = app.lease_items()
            except Exception:  # the lease table may not exist yet
                leases = []
            time.sleep(0.5)
        assert leases, "the worker never took its lease"
        # ... and goes missing while the worker runs: an outage of the sink.
        app.endpoints.client("dynamodb").delete_table(TableName=app.replica)
        write_order_changes(app.endpoints.client("dynamodb"), app.table, 40, seed=6)
        app.bridge()
        time.sleep(4)  # reading and retrying the missing table
        (lease,) = app.lease_items()
        assert lease["checkpoint"]["S"] == "TRIM_HORIZON"
        app.create_replica()  # the outage ends
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if by_key(app.replica_items()) == by_key(app.source_items()):
                break
            time.sleep(0.5)
        assert by_key(app.replica_items()) == by_key(app.source_items())
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline
            and app.lease_items()[0]["checkpoint"]["S"] == "TRIM_HORIZON"
        ):
            time.sleep(0.3)
        assert app.lease_items()[0]["checkpoint"]["S"] != "TRIM_HORIZON"
    finally:
        worker.terminate()
        output = worker.communicate(timeout=40)[0].decode()
    assert worker.returncode == 0, output[-3000:]
    assert '"worker.stopped"' in output
    # Retried, logged by error type (never error text: it can carry item values).
    assert '"sink.records_retry"' in output and '"sink": "replication"' in output
