"""DescribeTable of the table a snapshot reads (backfill and verify), with one clear line when
it does not exist."""

from __future__ import annotations

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
