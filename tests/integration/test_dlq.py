"""The SQS dead-letter queue against moto: park, list, overflow to S3, delete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from consumer.aws import AwsEndpoints
from consumer.pipeline.dlq import DlqUnavailableError, ParkedRecord, SqsDeadLetterQueue

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
