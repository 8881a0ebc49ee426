"""Issue 15.2 (second half): a destination that goes missing while `consumer run` runs (the
replica table, the audit bucket or the dead-letter queue deleted) hands the shard's lease over
after `leases.destination_missing_release_s` instead of holding it (and its records) forever.

What "missing" is, per the services' documentation:
- DynamoDB PutItem: ResourceNotFoundException, "the operation tried to access a nonexistent
  table or index" (DynamoDB API reference, PutItem, Errors);
- S3 PutObject: NoSuchBucket, "the specified bucket does not exist" (S3 API reference, Error
  responses);
- SQS SendMessageBatch / GetQueueAttributes: QueueDoesNotExist ("the specified queue doesn't
  exist"; AWS.SimpleQueueService.NonExistentQueue in the query protocol).

Each test checks the lease table directly: while the worker that lost its destination owns the
lease, its checkpoint never moves past the records it could not apply; the lease is given up
within the bound; and once a correctly configured worker (or the same one, after its
cool-down, with the destination recreated) holds it, every record arrives: nothing is lost.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import datetime
from typing import Any

import orjson
import pytest

from consumer.local import resources
from consumer.local.sample_orders import write_order_changes
from consumer.local.stack import LocalStackState
from tests.service_harness import Deployment, by_key, replica_items

pytestmark = pytest.mark.integration

BOUND_S = 2.0
# From the first failed write to the lease's release: the bound, one more write to the missing
# destination (which ends the wait) and the lease-table write, on a loaded two-core machine.
BOUND_SLACK_S = 2.0
# From the records being in the stream: also reading them (polling every 0.5 s) and the first
# write. Without the fix the lease is never given up (the watch below waits 30 s).
RELEASE_SLACK_S = 10.0


def _bounded(bound_s: float, cool_down_s: float, **extra: str) -> dict[str, str]:
    return {
        # Polling: the handover is the subject here, not the read path. kinesis-mock keeps a
        # moved lease's old subscription "active" for minutes (AWS: 5 s), so under EFO worker a
        # could spend the whole watch refused with ResourceInUse and never see a record.
        "CONSUMER_STREAM__MODE": "polling",
        "CONSUMER_LEASES__DESTINATION_MISSING_RELEASE_S": str(bound_s),
        "CONSUMER_LEASES__DESTINATION_MISSING_COOL_DOWN_S": str(cool_down_s),
        **extra,
    }


def _leases_by_shard(app: Deployment) -> dict[str, dict[str, Any]]:
    try:
        return {item["leaseKey"]["S"]: item for item in app.lease_items()}
    except Exception:  # the lease table may not exist yet
        return {}


def _owner(lease: dict[str, Any]) -> str | None:
    owner = lease.get("leaseOwner", {}).get("S")
    return None if owner in (None, "") else str(owner)


def _wait_for(condition: Any, timeout_s: float, what: str, every_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every_s)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def _watch_release(
    app: Deployment, shard: str, owner: str, timeout_s: float
) -> tuple[float | None, list[str]]:
    """Polls the lease until `owner` no longer holds it: (when, checkpoints seen meanwhile)."""
    checkpoints: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lease = _leases_by_shard(app).get(shard)
        if lease is not None:
            if _owner(lease) != owner:
                return time.monotonic(), checkpoints
            checkpoints.append(lease["checkpoint"]["S"])
        time.sleep(0.1)
    return None, checkpoints


def _stop(worker: subprocess.Popen[bytes]) -> str:
    if worker.poll() is None:
        worker.terminate()
    return worker.communicate(timeout=40)[0].decode()


def _lines(output: str, event: str) -> list[dict[str, Any]]:
    found = []
    for line in output.splitlines():
        if f'"{event}"' in line:
            try:
                found.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return found


def _at(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()


def _released_within_the_bound(output: str) -> None:
    """The log's own clock: first sighting of the missing destination to the release."""
    first_seen = _at(_lines(output, "destination.missing")[0])
    released = _at(_lines(output, "lease.relinquished")[0])
    assert BOUND_S <= released - first_seen <= BOUND_S + BOUND_SLACK_S, released - first_seen


def test_a_deleted_replica_table_hands_the_lease_to_a_correctly_configured_worker(
    local_stack: LocalStackState, unique_name: str
) -> None:
    app = Deployment(local_stack, unique_name, shards=2)
    app.create()  # worker a's replica
    good_replica = f"{unique_name}-replica-b"
    resources.create_replica(app.endpoints, good_replica)
    settings = _bounded(BOUND_S, 120.0)
    worker_a = app.spawn_worker(CONSUMER_LEASES__WORKER_ID="worker-a", **settings)
    worker_b = app.spawn_worker(
        CONSUMER_LEASES__WORKER_ID="worker-b",
        CONSUMER_PIPELINES__REPLICATION__TABLE=good_replica,
        **settings,
    )
    outputs: dict[str, str] = {}
    try:
        _wait_for(
            lambda: sorted(_owner(lease) or "" for lease in _leases_by_shard(app).values())
            == ["worker-a", "worker-b"],
            60,
            "each worker holds one of the two leases",
        )
        (shard_a,) = [k for k, v in _leases_by_shard(app).items() if _owner(v) == "worker-a"]
        # Worker a's destination goes missing for good while it runs ...
        app.endpoints.client("dynamodb").delete_table(TableName=app.replica)
        write_order_changes(app.endpoints.client("dynamodb"), app.table, 80, seed=15)
        app.bridge()
        written = time.monotonic()
        # ... so it gives its lease up within the bound, having checkpointed nothing.
        released_at, checkpoints = _watch_release(app, shard_a, "worker-a", 30)
        assert released_at is not None, "worker a held its lease with its replica table gone"
        assert released_at - written <= BOUND_S + RELEASE_SLACK_S, released_at - written
        assert checkpoints and set(checkpoints) == {"TRIM_HORIZON"}, checkpoints
        # Worker b, whose replica exists, takes it and applies every record: nothing lost.
        source = by_key(app.source_items())
        _wait_for(
            lambda: by_key(replica_items(app.endpoints, good_replica)) == source,
            40,
            "worker b's replica equals the source table",
            every_s=0.5,
        )
        leases = _leases_by_shard(app)
        assert {_owner(lease) for lease in leases.values()} == {"worker-b"}
        # Worker a, cooling down, does not take (or ask for) it back.
        time.sleep(2)
        assert {_owner(lease) for lease in _leases_by_shard(app).values()} == {"worker-b"}
        assert worker_a.poll() is None, "worker a must keep running (and not be ready)"
    finally:
        outputs["a"] = _stop(worker_a)
        outputs["b"] = _stop(worker_b)
        print("worker a:", outputs["a"][-6000:])  # shown when the test fails
    assert worker_a.returncode == 0 and worker_b.returncode == 0, outputs["a"][-3000:]
    # One clear line, naming the sink, the error code and how long it was missing.
    (gone,) = _lines(outputs["a"], "shard.destination_gone")
    assert gone["sink"] == "replication" and gone["code"] == "ResourceNotFoundException"
    assert gone["shard_id"] == shard_a and gone["missing_for_s"] >= BOUND_S
    assert _lines(outputs["a"], "lease.relinquished")[0]["to"] == "worker-b"
    _released_within_the_bound(outputs["a"])
    assert not _lines(outputs["b"], "shard.destination_gone")


def test_a_deleted_audit_bucket_releases_the_lease_and_nothing_is_lost_once_it_is_back(
    local_stack: LocalStackState, unique_name: str
) -> None:
    app = Deployment(local_stack, unique_name, shards=1)
    app.create(replica=False)
    bucket = f"{unique_name}-audit"
    s3 = app.endpoints.client("s3")
    s3.create_bucket(Bucket=bucket)
    cool_down_s = 4.0
    worker = app.spawn_worker(
        **_bounded(
            BOUND_S,
            cool_down_s,
            CONSUMER_PIPELINES__REPLICATION__ENABLED="false",
            CONSUMER_PIPELINES__AUDIT__ENABLED="true",
            CONSUMER_PIPELINES__AUDIT__BUCKET=bucket,
            CONSUMER_PIPELINES__AUDIT__MAX_AGE_S="0.5",
            CONSUMER_PIPELINES__AUDIT__SSE="none",
        )
    )
    try:
        _wait_for(lambda: len(_leases_by_shard(app)) == 1 and all(
            _owner(lease) for lease in _leases_by_shard(app).values()
        ), 60, "the worker holds the lease")
        ((shard, lease),) = _leases_by_shard(app).items()
        owner = _owner(lease)
        assert owner is not None
        s3.delete_bucket(Bucket=bucket)  # empty: nothing was written yet
        write_order_changes(app.endpoints.client("dynamodb"), app.table, 40, seed=16)
        stats = app.bridge()
        written = time.monotonic()
        released_at, checkpoints = _watch_release(app, shard, owner, 30)
        assert released_at is not None, "the worker held its lease with its audit bucket gone"
        assert released_at - written <= BOUND_S + RELEASE_SLACK_S, released_at - written
        assert checkpoints and set(checkpoints) == {"TRIM_HORIZON"}, checkpoints
        # Alone, it released the lease to nobody and does not take it back while cooling.
        assert _owner(_leases_by_shard(app)[shard]) is None
        s3.create_bucket(Bucket=bucket)  # the destination is back
        # After the cool-down the worker takes the shard again and every record arrives.
        expected = _kinesis_event_ids(app)
        assert len(expected) == stats.written
        _wait_for(
            lambda: resources.audit_event_ids(app.endpoints, bucket) == expected,
            cool_down_s + 30,
            "every change is in the audit bucket",
            every_s=0.5,
        )
        _wait_for(
            lambda: _leases_by_shard(app)[shard]["checkpoint"]["S"] != "TRIM_HORIZON",
            15,
            "the checkpoint moves once the records are durable",
        )
    finally:
        output = _stop(worker)
        print("worker:", output[-6000:])  # shown when the test fails
    assert worker.returncode == 0, output[-3000:]
    (gone,) = _lines(output, "shard.destination_gone")
    assert gone["sink"] == "audit" and gone["code"] == "NoSuchBucket"
    relinquished = _lines(output, "lease.relinquished")
    assert relinquished and relinquished[0]["to"] is None
    _released_within_the_bound(output)
    # The lease was not taken back during the cool-down (it starts as the shard gives up,
    # logged just before), and was once it was over.
    retaken = [
        _at(line) - _at(gone)
        for line in _lines(output, "lease.acquired")
        if line.get("shard") == shard and _at(line) > _at(gone)
    ]
    assert retaken and min(retaken) >= cool_down_s, retaken


def _kinesis_event_ids(app: Deployment) -> set[str]:
    kinesis = app.endpoints.client("kinesis")
    ids: set[str] = set()
    for shard in kinesis.list_shards(StreamName=app.stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=app.stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                ids.add(orjson.loads(record["Data"])["eventID"])
            if not page["Records"] or not page.get("MillisBehindLatest"):
                break
            iterator = page.get("NextShardIterator")
    return ids


def test_a_deleted_dead_letter_queue_stops_the_shard_at_the_bound_not_after_three_tries(
    local_stack: LocalStackState, unique_name: str
) -> None:
    """The DLQ is a destination too: a deleted queue (QueueDoesNotExist) is waited on up to
    the bound, then the shard stops with DestinationGone (its lease handed over by the
    worker), and nothing past the unparked record is checkpointed."""
    from consumer.pipeline.dlq import SqsDeadLetterQueue
    from consumer.pipeline.missing_destination import DestinationGone
    from consumer.pipeline.processor import Route, ShardPipeline
    from consumer.records.batch import RawRecord, ReadBatch
    from tests.change_factory import destination_record
    from tests.pipeline_fakes import MemoryCheckpointer, MemorySink, sink_error

    app = Deployment(local_stack, unique_name, shards=1)
    sqs_sync = app.endpoints.client("sqs")
    queue_url = sqs_sync.create_queue(QueueName=f"{unique_name}-dlq")["QueueUrl"]
    sqs_sync.delete_queue(QueueUrl=queue_url)

    async def run() -> tuple[float, MemoryCheckpointer, BaseException]:
        poison = RawRecord(
            orjson.dumps(destination_record("INSERT", "a", 1, new={"v": {"N": "1"}})),
            "1",
            int(time.time() * 1000),
            "a",
        )
        sink = MemorySink(fail=lambda events, call: {0: sink_error(retryable=False)})
        checkpointer = MemoryCheckpointer()
        async with app.endpoints.aio_client("sqs") as sqs:
            pipeline = ShardPipeline(
                "stream",
                "shardId-000000000000",
                [Route(sink)],
                SqsDeadLetterQueue(sqs, queue_url),
                checkpointer,
                checkpoint_interval_s=0.0,
                outage_backoff_base_s=0.05,
                missing_destination_bound_s=1.0,
            )
            batch = ReadBatch("shardId-000000000000", [poison], 0, "1")
            started = time.monotonic()
            with pytest.raises(DestinationGone) as gone:
                await pipeline.process(batch)
            return time.monotonic() - started, checkpointer, gone.value

    elapsed, checkpointer, gone = asyncio.run(run())
    assert isinstance(gone, DestinationGone) and gone.sink == "dlq"
    assert gone.code in ("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue")
    assert 1.0 <= elapsed < 5.0, elapsed
    assert checkpointer.checkpoints == []
