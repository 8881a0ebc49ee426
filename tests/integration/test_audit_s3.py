"""The audit sink against S3 on the local stack (moto server): objects, keys, overwrites on
retry, failed puts that lose nothing, and a crash and restart without duplicate lines."""

from __future__ import annotations

from typing import Any

import pytest

from consumer.aws import AwsEndpoints
from consumer.pipeline.audit.settings import AuditSettings
from consumer.pipeline.audit.sink import AuditSink
from consumer.pipeline.sink import SinkError
from tests.unit.test_audit_support import SHARD, change_event, change_events, ndjson, sequence

pytestmark = pytest.mark.integration

SHARDS = ("shardId-000000000000", "shardId-000000000001", "shardId-000000000002")


@pytest.fixture(scope="module")
def s3(endpoints: AwsEndpoints) -> Any:
    return endpoints.client("s3")  # one boto3 client: building one takes a while


@pytest.fixture
def bucket(s3: Any, unique_name: str) -> str:
    s3.create_bucket(Bucket=unique_name)
    return unique_name


def make_sink(endpoints: AwsEndpoints, bucket: str, **settings: Any) -> AuditSink:
    options: dict[str, Any] = {"retry_base_s": 0.01, "retry_cap_s": 0.05, **settings}
    settings = AuditSettings(bucket=bucket, **options)
    return AuditSink(settings, store_factory=lambda: endpoints.aio_client("s3"))


def keys(s3: Any, bucket: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def lines(s3: Any, bucket: str) -> list[dict[str, Any]]:
    """Every line of every object in the bucket."""
    return [
        line
        for key in keys(s3, bucket)
        for line in ndjson(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    ]


def positions(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((line["shard_id"], line["sequence_number"]) for line in found)


async def test_flush_writes_gzip_ndjson_at_the_expected_key(
    endpoints: AwsEndpoints, s3: Any, bucket: str
) -> None:
    events = change_events(range(3))
    async with make_sink(endpoints, bucket) as sink:
        assert await sink.write(events) == {}
        await sink.flush()
    key = f"audit/table=orders/dt=2024-07-03/hour=22/{SHARD}/{sequence(0)}-0.ndjson.gz"
    assert keys(s3, bucket) == [key]
    stored = s3.get_object(Bucket=bucket, Key=key)
    assert stored["ContentType"] == "application/x-ndjson"
    assert stored["ContentEncoding"] == "gzip"
    assert stored["ServerSideEncryption"] == "AES256"
    assert stored["Metadata"] == {"records": "3"}
    found = ndjson(stored["Body"].read())
    assert [line["sequence_number"] for line in found] == [sequence(n) for n in range(3)]
    assert [line["change"]["eventID"] for line in found] == [e.event_id for e in events]


async def test_a_retried_batch_with_the_same_first_record_overwrites(
    endpoints: AwsEndpoints, s3: Any, bucket: str
) -> None:
    async with make_sink(endpoints, bucket) as first:
        await first.write(change_events(range(5)))
        await first.flush()
    # The checkpoint never moved: a new instance reads the same records and more.
    async with make_sink(endpoints, bucket) as second:
        await second.write(change_events(range(8)))
        await second.flush()
    assert len(keys(s3, bucket)) == 1
    assert positions(lines(s3, bucket)) == [(SHARD, sequence(n)) for n in range(8)]


async def test_a_failed_put_keeps_the_buffer_and_the_next_flush_loses_nothing(
    endpoints: AwsEndpoints, s3: Any, unique_name: str
) -> None:
    async with make_sink(endpoints, unique_name) as sink:
        await sink.write(change_events(range(4)))
        with pytest.raises(SinkError, match="NoSuchBucket"):
            await sink.flush()  # the bucket does not exist yet
        assert sink.pending_records == 4
        s3.create_bucket(Bucket=unique_name)
        await sink.write(change_events(range(4, 6)))
        await sink.flush()
        assert sink.pending_records == 0
    assert positions(lines(s3, unique_name)) == [(SHARD, sequence(n)) for n in range(6)]


async def test_objects_never_mix_shards(endpoints: AwsEndpoints, s3: Any, bucket: str) -> None:
    batch = [change_event(n, shard=shard) for n in range(10) for shard in SHARDS]
    async with make_sink(endpoints, bucket) as sink:
        await sink.write(batch)
        await sink.flush()
    stored = keys(s3, bucket)
    assert len(stored) == len(SHARDS)
    for key in stored:
        found = ndjson(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        shards = {line["shard_id"] for line in found}
        assert len(shards) == 1
        assert f"/{shards.pop()}/" in key
        assert len(found) == 10


class CrashError(Exception):
    """The worker dies here."""


async def consume(
    sink: AuditSink,
    checkpoint: dict[str, int],
    end: int,
    batch_size: int,
    *,
    crash_at_flush: int | None = None,
    finish: bool = True,
) -> None:
    """What ShardPipeline does with a buffered sink, for every shard: read batches from the
    checkpoint (the next record to read), write them, and when the sink wants it, flush and
    then checkpoint. With `crash_at_flush=n` the worker dies right after its n-th flush,
    before writing that checkpoint; without `finish` it stops holding what it buffered."""
    flushes = 0
    start = min(checkpoint.values())
    while start < end:
        stop = min(start + batch_size, end)
        batch = [
            change_event(n, shard=shard)
            for shard in SHARDS
            for n in range(max(start, checkpoint[shard]), stop)
        ]
        assert await sink.write(batch) == {}
        if sink.wants_flush(0) or (finish and stop == end):
            await sink.flush()
            flushes += 1
            if flushes == crash_at_flush:
                raise CrashError
            checkpoint.update(dict.fromkeys(SHARDS, stop))
        start = stop


@pytest.mark.parametrize("crash", ["with records buffered", "after a flush, before its checkpoint"])
async def test_a_crash_and_restart_leaves_no_duplicate_lines(
    endpoints: AwsEndpoints, s3: Any, bucket: str, crash: str
) -> None:
    checkpoint = dict.fromkeys(SHARDS, 0)
    worker = make_sink(endpoints, bucket, max_records=10)
    if crash == "with records buffered":
        # Flushes and checkpoints at 10 and 20, then dies holding records 20-26.
        await consume(worker, checkpoint, end=27, batch_size=5, finish=False)
        assert set(checkpoint.values()) == {20}
        assert worker.pending_records == 7 * len(SHARDS)
    else:
        # Flushes 0-13 and checkpoints; flushes 14-27 (objects at 14 and 24) and dies
        # before checkpointing them.
        with pytest.raises(CrashError):
            await consume(worker, checkpoint, end=40, batch_size=7, crash_at_flush=2)
        assert set(checkpoint.values()) == {14}
    await worker.aclose()

    # The next owner resumes at the checkpoint and batches differently.
    async with make_sink(endpoints, bucket, max_records=10) as restarted:
        await consume(restarted, checkpoint, end=45, batch_size=3)

    found = positions(lines(s3, bucket))
    assert len(found) == len(set(found)), "no line is stored twice"
    assert found == sorted((shard, sequence(n)) for shard in SHARDS for n in range(45))
