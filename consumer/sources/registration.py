"""Registering the application's enhanced fan-out consumer, idempotently."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from botocore.exceptions import ClientError

from consumer.aws.errors import error_code, is_throttling
from consumer.sources.model import EfoUnavailableError, ShardGoneError

log = structlog.get_logger(__name__)

ACCESS_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied"})


async def _describe(client: Any, **consumer: str) -> dict[str, Any] | None:
    """DescribeStreamConsumer's description, or None when there is no such consumer."""
    try:
        response = await client.describe_stream_consumer(**consumer)
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
    """Returns the ARN of the ACTIVE consumer `name`, registering it if missing; every worker
    may call it at once (a concurrent registration's ResourceInUseException is waited out).
    EfoUnavailableError when access is denied or the stream's consumer limit is reached."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            description = await _describe(client, StreamARN=stream_arn, ConsumerName=name)
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


class StreamConsumer:
    """The application's registered EFO consumer, shared by every shard's subscription.

    A consumer deregistered while in use makes SubscribeToShard answer
    ResourceNotFoundException, as for a missing shard: `is_gone` tells the two apart, and
    `reregister` registers it again once for all shards (under a new ARN).
    """

    def __init__(self, client: Any, consumer_arn: str) -> None:
        self._client = client
        self.arn = consumer_arn
        # A consumer ARN is `<stream ARN>/consumer/<name>:<timestamp>`.
        self.stream_arn, separator, name = consumer_arn.partition("/consumer/")
        if not separator:
            raise ValueError(f"not a stream consumer ARN: {consumer_arn}")
        self.name = name.rsplit(":", 1)[0]
        self._lock = asyncio.Lock()
        self.reregistrations = 0

    async def is_gone(self, consumer_arn: str) -> bool:
        """True when `consumer_arn` is no longer an ACTIVE consumer of the stream."""
        if consumer_arn != self.arn:
            return True  # already replaced by another shard's re-registration
        description = await _describe(self._client, ConsumerARN=consumer_arn)
        return description is None or description["ConsumerStatus"] != "ACTIVE"

    async def reregister(self, stale_arn: str) -> str:
        """The ARN to subscribe with after `stale_arn` was found gone: registers the consumer
        again, or returns the ARN another shard's re-registration already got."""
        async with self._lock:
            if self.arn != stale_arn:
                return self.arn
            log.warning(
                "efo.consumer_reregistering",
                consumer=self.name,
                stale_arn=stale_arn,
                reason="the stream consumer was deregistered while in use",
            )
            try:
                self.arn = await ensure_stream_consumer(self._client, self.stream_arn, self.name)
            except ClientError as error:
                if error_code(error) == "ResourceNotFoundException":
                    raise ShardGoneError(f"stream {self.stream_arn}: {error}") from error
                raise
            self.reregistrations += 1
            log.warning("efo.consumer_reregistered", consumer=self.name, arn=self.arn)
            return self.arn
