"""The tables a snapshot needs (backfill and verify), with one clear line when one does not
exist: the source table (DescribeTable) and the lease table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, cast

from botocore.exceptions import ClientError


@contextmanager
def missing_means(error: type[Exception], line: str) -> Iterator[None]:
    """Raises `error(line)` (the command's own) for a ResourceNotFoundException inside."""
    try:
        yield
    except ClientError as refused:
        if refused.response["Error"]["Code"] == "ResourceNotFoundException":
            raise error(line) from None
        raise


async def describe_source_table(
    dynamodb: Any, table: str, region: str, error: type[Exception]
) -> dict[str, Any]:
    """The table's description; `error` (the command's own) if there is no such table."""
    with missing_means(error, f"table {table!r} does not exist in {region} (--table)"):
        answer = await dynamodb.describe_table(TableName=table)
    return cast(dict[str, Any], answer["Table"])


def lease_table_required(
    lease_table: str, error: type[Exception]
) -> AbstractContextManager[None]:
    """Raises `error` (the command's own) if the lease table used inside does not exist."""
    return missing_means(
        error,
        f"lease table {lease_table!r} does not exist: start "
        "`consumer run` first (it creates it), or set leases.table",
    )
