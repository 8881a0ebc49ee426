"""At start: is the source table's Kinesis destination set to MICROSECOND precision? With
MILLISECOND (the default) one item's changes often tie (README, "Ordering and ties"), so
`consumer run` warns with the fixing command. The check never stops the worker: a destination
it cannot read is one info line.
"""

from __future__ import annotations

from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

log = structlog.get_logger(__name__)

MICROSECOND = "MICROSECOND"
# A destination described without the field predates it: the default, MILLISECOND.
DEFAULT_PRECISION = "MILLISECOND"


def fix_command(table: str, stream_arn: str) -> str:
    """The AWS CLI command that sets the destination to MICROSECOND precision."""
    return (
        f"aws dynamodb update-kinesis-streaming-destination --table-name {table} "
        f"--stream-arn {stream_arn} --update-kinesis-streaming-configuration "
        f"ApproximateCreationDateTimePrecision={MICROSECOND}"
    )


async def warn_unless_microsecond(dynamodb: Any, table: str | None, stream_arn: str) -> str | None:
    """Logs a warning (and returns the fix command) when the destination's precision is not
    MICROSECOND; None when it is, when there is no known table, or when it cannot be read."""
    if not table:
        return None
    try:
        response = await dynamodb.describe_kinesis_streaming_destination(TableName=table)
    except (ClientError, BotoCoreError) as error:
        log.info("precision.unchecked", table=table, error_type=type(error).__name__)
        return None
    precision = next(
        (
            str(destination.get("ApproximateCreationDateTimePrecision", DEFAULT_PRECISION))
            for destination in response.get("KinesisDataStreamDestinations", [])
            if destination.get("StreamArn") == stream_arn
        ),
        None,
    )
    if precision is None:
        log.warning("precision.no_destination", table=table, stream_arn=stream_arn)
        return None
    if precision == MICROSECOND:
        return None
    command = fix_command(table, stream_arn)
    log.warning(
        "precision.millisecond",
        table=table,
        precision=precision,
        why="changes of one item in one millisecond tie; ties the images cannot order are "
        "decided by shard order (metric ambiguous_ties)",
        fix=command,
    )
    return command
