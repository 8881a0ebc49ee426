"""The SQS dead-letter queue against moto: park, list, overflow to S3, delete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio

from consumer.aws import AwsEndpoints
from consumer.pipeline.dlq import DlqUnavailableError, ParkedRecord, SqsDeadLetterQueue
from tests.strict_sqs import StrictSqs

pytestmark = pytest.mark.integration


def parked(sequence: int, raw: bytes = b'{"eventName":"MODIFY"}') -> ParkedRecord:
    return ParkedRecord(
        pipeline="replication",
        error="ValidationException: item too large",
        error_type="SinkError",
        stream="orders-cdc",
        shard_id="shardId-000000000001",
        sequence_number=str(sequence),
        sub_sequence_number=0,
        arrival_ms=1_700_000_000_000,
        event_id=f"event-{sequence}",
        raw=raw,
        attempts=3,
    )


@pytest_asyncio.fixture
async def clients(endpoints: AwsEndpoints, unique_name: str) -> AsyncIterator[tuple[Any, Any, str]]:
    async with endpoints.aio_client("sqs") as sqs, endpoints.aio_client("s3") as s3:
        queue_url = (await sqs.create_queue(QueueName=unique_name))["QueueUrl"]
        await s3.create_bucket(Bucket=unique_name)
        yield sqs, s3, queue_url


async def test_parked_records_keep_their_position_error_and_raw_bytes(
    clients: tuple[Any, Any, str],
) -> None:
    sqs, _, queue_url = clients
    dlq = SqsDeadLetterQueue(sqs, queue_url)
    records = [parked(n, raw=bytes(range(256)) * 2) for n in range(13)]  # > one SQS batch
    await dlq.park(records)
    assert await dlq.depth() == 13
    received = []
    while len(received) < 13:
        batch = await dlq.receive(10, visibility_timeout_s=60)
        assert batch
        received.extend(batch)
    by_sequence = {m.record.sequence_number: m.record for m in received}
    assert sorted(by_sequence, key=int) == [str(n) for n in range(13)]
    first = by_sequence["0"]
    assert first.raw == bytes(range(256)) * 2
    assert first.pipeline == "replication"
    assert first.shard_id == "shardId-000000000001"
    assert first.error.startswith("ValidationException")
    assert first.attempts == 3
    assert first.parked_at
    for message in received:
        await dlq.delete(message)
    assert await dlq.depth() == 0


async def test_an_oversized_record_goes_to_s3_and_the_message_points_to_it(
    clients: tuple[Any, Any, str], unique_name: str
) -> None:
    sqs, s3, queue_url = clients
    dlq = SqsDeadLetterQueue(sqs, queue_url, s3, overflow_bucket=unique_name)
    big = b"x" * 400_000
    await dlq.park([parked(1, raw=big)])
    (message,) = await dlq.receive(1)
    assert message.record.raw == big
    listed = await s3.list_objects_v2(Bucket=unique_name)
    assert [o["Key"] for o in listed["Contents"]] == [
        "dlq-overflow/replication/shardId-000000000001/1-0.json"
    ]


async def test_an_oversized_record_without_overflow_bucket_is_a_clear_error(
    clients: tuple[Any, Any, str],
) -> None:
    sqs, _, queue_url = clients
    dlq = SqsDeadLetterQueue(sqs, queue_url)
    with pytest.raises(DlqUnavailableError, match="no overflow bucket"):
        await dlq.park([parked(1, raw=b"x" * 400_000)])


async def test_a_missing_queue_fails_loudly(endpoints: AwsEndpoints) -> None:
    async with endpoints.aio_client("sqs") as sqs:
        dlq = SqsDeadLetterQueue(sqs, f"{endpoints.endpoint_for('sqs')}/000000000000/missing")
        with pytest.raises(DlqUnavailableError):
            await dlq.park([parked(1)])


async def test_release_makes_a_received_message_visible_again(
    clients: tuple[Any, Any, str],
) -> None:
    sqs, _, queue_url = clients
    dlq = SqsDeadLetterQueue(sqs, queue_url)
    await dlq.park([parked(5)])
    (message,) = await dlq.receive(1, visibility_timeout_s=300)
    assert await dlq.receive(1) == []
    await dlq.release(message)
    (again,) = await dlq.receive(1)
    assert again.record.sequence_number == "5"
    assert again.receive_count == 2


# --- against a stand-in as strict as SQS (tests/strict_sqs.py cites the rules) ---------------


async def test_ten_large_records_are_parked_in_batches_sqs_accepts(
    clients: tuple[Any, Any, str],
) -> None:
    """Issue 14.3: ten 150 KB records went out as one ~2 MB SendMessageBatch; SQS answers
    BatchRequestTooLong, and the shard retried that forever with nothing in the DLQ."""
    sqs, s3, queue_url = clients
    strict = StrictSqs(sqs)
    dlq = SqsDeadLetterQueue(
        strict, queue_url, s3_client=s3, overflow_bucket=queue_url.rsplit("/", 1)[-1]
    )
    await dlq.park([parked(n, raw=bytes([n]) * 150_000) for n in range(10)])
    assert await dlq.depth() == 10
    assert strict.batches and max(strict.batches) <= 262_144


async def test_error_text_sqs_would_refuse_is_escaped_and_round_trips(
    clients: tuple[Any, Any, str],
) -> None:
    sqs, _, queue_url = clients
    dlq = SqsDeadLetterQueue(StrictSqs(sqs), queue_url)
    record = replace(parked(1), error="bad value \uffff\ufffe and a lone \udc80 surrogate")
    await dlq.park([record])
    (message,) = await dlq.receive(1)
    assert message.record.error.startswith("bad value \uffff\ufffe and a lone ")
    assert message.record.raw == record.raw


async def test_a_queue_with_a_small_maximum_message_size_overflows_to_s3(
    clients: tuple[Any, Any, str],
) -> None:
    sqs, s3, queue_url = clients
    await sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"MaximumMessageSize": "2048"})
    bucket = queue_url.rsplit("/", 1)[-1]
    dlq = SqsDeadLetterQueue(StrictSqs(sqs), queue_url, s3_client=s3, overflow_bucket=bucket)
    await dlq.park([parked(n, raw=b"x" * 3000) for n in range(3)])
    messages = await dlq.receive(10)
    assert sorted(m.record.raw for m in messages) == [b"x" * 3000] * 3


async def test_a_record_that_can_never_be_parked_stops_the_shard_in_one_line(
    clients: tuple[Any, Any, str],
) -> None:
    """Issue 20: a record too large for SQS with no overflow bucket stalled its shard forever
    (and /readyz stayed ready). Now: a few tries, then ShardStopped naming the record."""
    from consumer.pipeline.processor import PARK_REFUSALS, ShardPipeline, ShardStopped
    from tests.pipeline_fakes import MemoryCheckpointer

    sqs, _, queue_url = clients
    dlq = SqsDeadLetterQueue(StrictSqs(sqs), queue_url)  # no overflow bucket
    pipeline = ShardPipeline(
        "stream", "shardId-000000000001", [], dlq, MemoryCheckpointer(), outage_backoff_base_s=0.01
    )
    huge = parked(7, raw=b"y" * 300_000)
    with pytest.raises(ShardStopped) as stopped:
        await pipeline._park([huge])
    message = str(stopped.value)
    assert "\n" not in message
    assert "shardId-000000000001@7" in message and "overflow bucket" in message
    assert pipeline.stats.park_refusals == PARK_REFUSALS
