"""Streams mode on Lambda: the same pipelines on a DynamoDB Streams event, with
ReportBatchItemFailures semantics (the lowest sequence number not applied everywhere)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from consumer.aws.shards import StreamsShardLister
from consumer.lambda_handler import handle_event
from consumer.local.stack import LocalStackState
from consumer.sources.model import StartPosition
from consumer.sources.streams import DynamoDBStreamsReader, install_lean_streams
from tests.service_harness import Deployment, by_key
from tests.stack_helpers import drain

pytestmark = pytest.mark.integration


def lambda_event(app: Deployment) -> dict[str, Any]:
    """The records of the table's stream, shaped as Lambda delivers them."""
    stream_arn = app.endpoints.client("dynamodbstreams").list_streams(TableName=app.table)[
        "Streams"
    ][0]["StreamArn"]

    async def read() -> list[dict[str, Any]]:
        async with app.endpoints.aio_client("dynamodbstreams") as client:
            install_lean_streams(client)
            shards = await StreamsShardLister(client, stream_arn).list_shards()
            reader = DynamoDBStreamsReader(client, stream_arn, interval_s=0.25)
            records, _ = await drain(reader.read(shards[0].shard_id, StartPosition.trim_horizon()))
            return [{**orjson.loads(r.data), "eventSourceARN": stream_arn} for r in records]

    return {"Records": asyncio.run(read())}


def test_a_streams_event_replicates_and_reports_nothing_failed(
    local_stack: LocalStackState, unique_name: str
) -> None:
    app = Deployment(local_stack, unique_name)
    app.create()
    dynamodb = app.endpoints.client("dynamodb")
    for n in range(20):
        dynamodb.put_item(
            TableName=app.table,
            Item={"pk": {"S": f"k{n % 6}"}, "n": {"N": str(n)}, "b": {"B": b"\x01"}},
        )
    dynamodb.delete_item(TableName=app.table, Key={"pk": {"S": "k0"}})
    event = lambda_event(app)
    settings = app.settings(
        CONSUMER_STREAM__MODE="streams",
        CONSUMER_STREAM__DYNAMODB_STREAM_ARN=(
            "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000"
        ),
    )
    assert asyncio.run(handle_event(event, settings)) == {"batchItemFailures": []}
    assert by_key(app.replica_items()) == by_key(app.source_items())
    # Lambda retries deliver the same batch again: nothing changes.
    assert asyncio.run(handle_event(event, settings)) == {"batchItemFailures": []}
    assert by_key(app.replica_items()) == by_key(app.source_items())


def test_failures_report_the_lowest_sequence_number_not_applied(
    local_stack: LocalStackState, unique_name: str
) -> None:
    app = Deployment(local_stack, unique_name)
    app.create()
    dynamodb = app.endpoints.client("dynamodb")
    for key in ("a", "bad", "c"):
        dynamodb.put_item(TableName=app.table, Item={"pk": {"S": key}})
    event = lambda_event(app)
    sequence = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
    settings = app.settings(
        CONSUMER_STREAM__MODE="streams",
        CONSUMER_STREAM__DYNAMODB_STREAM_ARN=(
            "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000"
        ),
        CONSUMER_PIPELINES__REPLICATION__TRANSFORM="tests.replication_hooks:explode_on_bad",
    )
    response = asyncio.run(handle_event(event, settings))
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence[1]}]}

    broken = {
        "Records": [dict(event["Records"][0]), {**event["Records"][2], "eventName": "UPSERT"}]
    }
    response = asyncio.run(handle_event(broken, settings))
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence[2]}]}


def test_a_failed_record_is_logged_as_failed_not_as_parked(
    local_stack: LocalStackState, unique_name: str
) -> None:
    """Lambda keeps a failed record in its batch (it retries from it); nothing is parked, so
    the log says the record failed, never `record.parked`."""
    app = Deployment(local_stack, unique_name)
    app.create()
    dynamodb = app.endpoints.client("dynamodb")
    for key in ("a", "bad"):
        dynamodb.put_item(TableName=app.table, Item={"pk": {"S": key}})
    event = lambda_event(app)
    bad = event["Records"][1]["dynamodb"]["SequenceNumber"]
    settings = app.settings(
        CONSUMER_STREAM__MODE="streams",
        CONSUMER_STREAM__DYNAMODB_STREAM_ARN=(
            "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000"
        ),
        CONSUMER_PIPELINES__REPLICATION__TRANSFORM="tests.replication_hooks:explode_on_bad",
    )
    with capture_logs() as logs:
        response = asyncio.run(handle_event(event, settings))
    assert response == {"batchItemFailures": [{"itemIdentifier": bad}]}
    events = [entry["event"] for entry in logs]
    assert "record.parked" not in events
    (failed,) = [entry for entry in logs if entry["event"] == "lambda.record_failed"]
    assert failed["sequence_number"] == bad and failed["sink"] == "replication"
