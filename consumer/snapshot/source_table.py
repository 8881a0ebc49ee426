"""The tables a snapshot needs (backfill and verify), with one clear line when one does not
exist: the source table (DescribeTable) and the lease table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError


async def describe_source_table(
    dynamodb: Any, table: str, region: str, error: type[Exception]
) -> dict[str, Any]:
    """The table's description; `error` (the command's own) if there is no such table."""
    try:
        answer = await dynamodb.describe_table(TableName=table)
    except ClientError as refused:
        if refused.response["Error"]["Code"] == "ResourceNotFoundException":
            raise error(f"table {table!r} does not exist in {region} (--table)") from None
        raise
    description: dict[str, Any] = answer["Table"]
    return description


@contextmanager
def lease_table_required(lease_table: str, error: type[Exception]) -> Iterator[None]:
    """Raises `error` (the command's own) if the lease table used inside does not exist."""
    try:
        yield
    except ClientError as refused:
        if refused.response["Error"]["Code"] == "ResourceNotFoundException":
            raise error(
                f"lease table {lease_table!r} does not exist: start "
                "`consumer run` first (it creates it), or set leases.table"
            ) from None
        raise
