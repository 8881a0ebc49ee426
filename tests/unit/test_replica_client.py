"""The replica's DynamoDB client skips botocore's parameter check only where it cannot fail
(issue 19, target 3: the check walked every attribute of every PutItem, ~8% of its CPU)."""

from __future__ import annotations

import asyncio

import pytest
from botocore.exceptions import EndpointConnectionError, ParamValidationError

from consumer.aws import AwsEndpoints
from consumer.pipeline.replication import replica_client

# Nothing listens on the discard port: a request that leaves the client fails to connect.
ENDPOINTS = AwsEndpoints(
    endpoint_urls={"dynamodb": "http://127.0.0.1:9"},
    access_key_id="000000000000",
    secret_access_key="local",
)


async def put_with_a_number_as_string(*, transform: bool) -> None:
    # An S value must be a string in the DynamoDB API model: botocore's parameter check
    # refuses 5 before sending; without it the request leaves (and DynamoDB would refuse it).
    async with replica_client(ENDPOINTS, transform=transform) as client:
        await client.put_item(TableName="replica", Item={"pk": {"S": 5}})


def test_decoded_items_are_sent_without_botocore_s_parameter_walk() -> None:
    with pytest.raises(EndpointConnectionError):  # sent: DynamoDB validates it
        asyncio.run(put_with_a_number_as_string(transform=False))


def test_a_transform_s_items_are_still_checked_by_botocore() -> None:
    # A hook's output is user code: botocore's check stays on.
    with pytest.raises(ParamValidationError):
        asyncio.run(put_with_a_number_as_string(transform=True))
