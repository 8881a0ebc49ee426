"""Registering the application's enhanced fan-out consumer, idempotently."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from botocore.exceptions import ClientError

from consumer.sources.efo import ACCESS_DENIED_CODES
from consumer.sources.errors import error_code, is_throttling
from consumer.sources.model import EfoUnavailableError

log = structlog.get_logger(__name__)


async def _describe(client: Any, stream_arn: str, name: str) -> dict[str, Any] | None:
    try:
        response = await client.describe_stream_consumer(StreamARN=stream_arn, ConsumerName=name)
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise
    description: dict[str, Any] = response["ConsumerDescription"]
    return description


async def ensure_stream_consumer(
    client: Any,
    stream_arn: str,
    name: str,
    timeout_s: float = 120.0,
    poll_interval_s: float = 0.5,
) -> str:
    """Returns the ARN of the ACTIVE consumer `name`, registering it if missing.

    Safe to call from every worker at once: a concurrent registration shows up as
    ResourceInUseException and we simply wait for the other one to become ACTIVE.
    Raises EfoUnavailableError when access is denied or the stream's consumer limit is reached.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            description = await _describe(client, stream_arn, name)
            if description is None:
                log.info("efo.register_consumer", stream_arn=stream_arn, consumer=name)
                await client.register_stream_consumer(StreamARN=stream_arn, ConsumerName=name)
            elif description["ConsumerStatus"] == "ACTIVE":
                return str(description["ConsumerARN"])
            elif description["ConsumerStatus"] == "DELETING":
                log.info("efo.consumer_deleting", consumer=name)
        except ClientError as error:
            code = error_code(error)
            if code in ACCESS_DENIED_CODES:
                raise EfoUnavailableError(f"cannot use enhanced fan-out: {error}") from error
            if code == "LimitExceededException" and "rate" not in str(error).lower():
                raise EfoUnavailableError(
                    f"cannot register EFO consumer {name}: the stream's consumer limit is "
                    f"reached ({error})"
                ) from error
            if code not in ("ResourceInUseException",) and not is_throttling(error):
                raise
        await asyncio.sleep(poll_interval_s)
    raise EfoUnavailableError(f"EFO consumer {name} did not become ACTIVE within {timeout_s} s")
