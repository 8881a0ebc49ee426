"""Issue 14.7: an UpdateTimeToLive error other than "already enabled" is reported, not swallowed.

moto's UpdateTimeToLive is kinder than DynamoDB: it silently moves TTL to any attribute and never
refuses. `StrictTimeToLiveClient` follows DynamoDB's rules instead (API reference,
UpdateTimeToLive: a ValidationException when TTL is already enabled, and TTL lives on only one
attribute: enabling it on another while it is active is refused with "TimeToLive is active on a
different AttributeName"): with TTL on another attribute the replica's tombstones would never
expire, or the wrong items would.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.exceptions import ClientError

from consumer.pipeline.replication import EXPIRES_AT, create_replica_table


class _Waiter:
    async def wait(self, **_: Any) -> None:
        return None


class StrictTimeToLiveClient:
    """The few DynamoDB calls create_replica_table makes, with DynamoDB's TTL rules."""

    def __init__(self, ttl_attribute: str | None = None, denied: bool = False) -> None:
        self.ttl_attribute = ttl_attribute
        self.denied = denied
        self.tables: set[str] = set()

    async def create_table(self, TableName: str, **_: Any) -> None:
        self.tables.add(TableName)

    def get_waiter(self, _name: str) -> _Waiter:
        return _Waiter()

    async def update_time_to_live(
        self,
        TableName: str,
        TimeToLiveSpecification: dict[str, Any],
    ) -> None:
        if self.denied:
            raise _error("AccessDeniedException", "not authorized to dynamodb:UpdateTimeToLive")
        wanted = TimeToLiveSpecification["AttributeName"]
        if self.ttl_attribute == wanted:
            raise _error("ValidationException", "TimeToLive is already enabled")
        if self.ttl_attribute is not None:
            raise _error(
                "ValidationException",
                "TimeToLive is active on a different AttributeName: current AttributeName is "
                f"{self.ttl_attribute}",
            )
        self.ttl_attribute = wanted


def _error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "UpdateTimeToLive")


def _create(client: StrictTimeToLiveClient) -> None:
    asyncio.run(
        create_replica_table(
            client, "replica", [{"AttributeName": "pk", "KeyType": "HASH"}],
            [{"AttributeName": "pk", "AttributeType": "S"}],
        )
    )  # fmt: skip


def test_ttl_is_enabled_on_the_tombstone_expiry() -> None:
    client = StrictTimeToLiveClient()
    _create(client)
    assert client.ttl_attribute == EXPIRES_AT


def test_already_enabled_on_this_attribute_is_fine() -> None:
    client = StrictTimeToLiveClient(ttl_attribute=EXPIRES_AT)
    _create(client)
    assert client.ttl_attribute == EXPIRES_AT


def test_ttl_on_another_attribute_is_reported() -> None:
    client = StrictTimeToLiveClient(ttl_attribute="expires")
    with pytest.raises(ClientError, match="different AttributeName"):
        _create(client)


def test_other_errors_are_reported() -> None:
    with pytest.raises(ClientError, match="AccessDenied"):
        _create(StrictTimeToLiveClient(denied=True))
