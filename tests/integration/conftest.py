"""Fixtures of the integration tests that several modules share (on the session's local stack)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from consumer.aws import AwsEndpoints
from consumer.pipeline.replication import create_replica_table


@pytest_asyncio.fixture
async def replica(endpoints: AwsEndpoints, unique_name: str) -> AsyncIterator[tuple[Any, str]]:
    """A fresh replica table keyed by `pk` (S) on moto, and a DynamoDB client to read it."""
    async with endpoints.aio_client("dynamodb") as client:
        await create_replica_table(
            client,
            unique_name,
            [{"AttributeName": "pk", "KeyType": "HASH"}],
            [{"AttributeName": "pk", "AttributeType": "S"}],
        )
        yield client, unique_name
