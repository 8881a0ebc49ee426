"""`consumer run` warns, with the fixing command, when the table's Kinesis destination has
MILLISECOND precision (issue 14.4).

moto does not implement DescribeKinesisStreamingDestination, so the client is a real
aiobotocore DynamoDB client under botocore's Stubber, which checks the request and the response
against the service model (the same shapes as AWS's API reference:
KinesisDataStreamDestination.ApproximateCreationDateTimePrecision is MILLISECOND or
MICROSECOND; the destination's default is MILLISECOND).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiobotocore.session import get_session
from aiobotocore.stub import AioStubber

from consumer.service.precision_check import fix_command, warn_unless_microsecond

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/orders-cdc"
OTHER = "arn:aws:kinesis:us-east-1:123456789012:stream/other"


@pytest_asyncio.fixture
async def dynamodb() -> AsyncIterator[tuple[Any, AioStubber]]:
    session = get_session()
    async with session.create_client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ) as client:
        with AioStubber(client) as stubber:
            yield client, stubber


def destinations(*entries: tuple[str, str | None]) -> dict[str, Any]:
    described = []
    for arn, precision in entries:
        entry: dict[str, Any] = {"StreamArn": arn, "DestinationStatus": "ACTIVE"}
        if precision is not None:
            entry["ApproximateCreationDateTimePrecision"] = precision
        described.append(entry)
    return {"TableName": "orders", "KinesisDataStreamDestinations": described}


@pytest.mark.parametrize("precision", ["MILLISECOND", None])
async def test_millisecond_precision_is_warned_with_the_fix(
    dynamodb: tuple[Any, AioStubber], precision: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    client, stubber = dynamodb
    stubber.add_response(
        "describe_kinesis_streaming_destination",
        destinations((OTHER, "MICROSECOND"), (STREAM, precision)),
        {"TableName": "orders"},
    )
    command = await warn_unless_microsecond(client, "orders", STREAM)
    assert command == fix_command("orders", STREAM)
    assert "ApproximateCreationDateTimePrecision=MICROSECOND" in command
    assert f"--stream-arn {STREAM}" in command and "--table-name orders" in command
    output = capsys.readouterr().out
    assert "precision.millisecond" in output and "update-kinesis-streaming-destination" in output


async def test_microsecond_precision_is_quiet(
    dynamodb: tuple[Any, AioStubber], capsys: pytest.CaptureFixture[str]
) -> None:
    client, stubber = dynamodb
    stubber.add_response(
        "describe_kinesis_streaming_destination",
        destinations((STREAM, "MICROSECOND")),
        {"TableName": "orders"},
    )
    assert await warn_unless_microsecond(client, "orders", STREAM) is None
    assert "precision." not in capsys.readouterr().out


async def test_no_table_means_no_call(dynamodb: tuple[Any, AioStubber]) -> None:
    client, stubber = dynamodb
    assert await warn_unless_microsecond(client, None, STREAM) is None
    stubber.assert_no_pending_responses()


async def test_a_destination_that_cannot_be_read_does_not_stop_the_worker(
    dynamodb: tuple[Any, AioStubber], capsys: pytest.CaptureFixture[str]
) -> None:
    client, stubber = dynamodb
    stubber.add_client_error(
        "describe_kinesis_streaming_destination", "AccessDeniedException", http_status_code=400
    )
    assert await warn_unless_microsecond(client, "orders", STREAM) is None
    assert "precision.unchecked" in capsys.readouterr().out


async def test_a_table_without_this_destination_is_warned(
    dynamodb: tuple[Any, AioStubber], capsys: pytest.CaptureFixture[str]
) -> None:
    client, stubber = dynamodb
    stubber.add_response(
        "describe_kinesis_streaming_destination",
        destinations((OTHER, "MICROSECOND")),
        {"TableName": "orders"},
    )
    assert await warn_unless_microsecond(client, "orders", STREAM) is None
    assert "precision.no_destination" in capsys.readouterr().out
