"""Enhanced fan-out: SubscribeToShard through aiobotocore, renewed every 5 minutes.

A subscription pushes `SubscribeToShardEvent`s for up to 5 minutes; the reader then subscribes
again AFTER the last ContinuationSequenceNumber (which advances even when no record came). After
any error it resubscribes from the same place, and it drops any record at or below the last one
it delivered, so nothing is skipped or repeated across renewals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError

from consumer.backoff import Backoff
from consumer.sources.errors import (
    TRANSIENT_NETWORK_ERRORS,
    error_code,
    is_server_error,
    is_throttling,
)
from consumer.sources.initial_response import RAW_STREAM, SubscriptionStream
from consumer.sources.lean import child_shard_ids, kinesis_records
from consumer.sources.model import (
    EfoUnavailableError,
    ReadBatch,
    ReaderError,
    ShardGoneError,
    StartPosition,
)

log = structlog.get_logger(__name__)

SUBSCRIBE_MIN_INTERVAL_S = 1.0  # SubscribeToShard: 1 call/s per consumer per shard
RESOURCE_IN_USE_WAIT_S = 5.0  # a new call takes over an existing subscription after 5 s
ACCESS_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied"})


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One decoded message of a subscription stream."""

    event_type: str
    payload: dict[str, Any]


class InStreamError(Exception):
    """An error AWS delivered inside the event stream (`:message-type` exception)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


async def stream_events(stream: SubscriptionStream) -> AsyncIterator[StreamEvent]:
    """Decodes the raw event stream: one orjson parse per event, nothing else."""
    buffer = EventStreamBuffer()
    async for chunk in stream.remaining_chunks():
        buffer.add_data(chunk)
        for message in buffer:
            headers = message.headers
            payload = orjson.loads(message.payload) if message.payload else {}
            if headers.get(":message-type") == "exception":
                raise InStreamError(
                    str(headers.get(":exception-type", "UnknownError")),
                    str(payload.get("message", payload.get("Message", ""))),
                )
            if headers.get(":message-type") == "error":
                raise InStreamError(
                    str(headers.get(":error-code", "UnknownError")),
                    str(headers.get(":error-message", "")),
                )
            yield StreamEvent(str(headers.get(":event-type", "")), payload)


class EfoReader:
    """Reads shards through one registered stream consumer.

    `client` is an aiobotocore Kinesis client prepared with `install_subscription_stream`.
    """

    def __init__(
        self,
        client: Any,
        consumer_arn: str,
        min_subscribe_interval_s: float = SUBSCRIBE_MIN_INTERVAL_S,
        in_use_wait_s: float = RESOURCE_IN_USE_WAIT_S,
    ) -> None:
        self._client = client
        self._consumer_arn = consumer_arn
        self._min_interval_s = min_subscribe_interval_s
        self._in_use_wait_s = in_use_wait_s
        self.subscriptions = 0
        self.resubscribes_after_error = 0

    async def _subscribe(self, shard_id: str, position: StartPosition) -> SubscriptionStream:
        backoff = Backoff(base_s=self._min_interval_s, cap_s=10.0)
        while True:
            try:
                response = await self._client.subscribe_to_shard(
                    ConsumerARN=self._consumer_arn,
                    ShardId=shard_id,
                    StartingPosition=position.subscribe_args(),
                )
                self.subscriptions += 1
                stream = response.get(RAW_STREAM)
                if not isinstance(stream, SubscriptionStream):
                    raise ReaderError(
                        "SubscribeToShard response has no raw stream: "
                        "call install_subscription_stream(client) first"
                    )
                return stream
            except ClientError as error:
                code = error_code(error)
                if code == "ResourceNotFoundException":
                    raise ShardGoneError(f"shard {shard_id}: {error}") from error
                if code in ACCESS_DENIED_CODES:
                    raise EfoUnavailableError(f"SubscribeToShard denied: {error}") from error
                if code == "ResourceInUseException":
                    # Our previous subscription (or another worker's) is still live.
                    await asyncio.sleep(self._in_use_wait_s * (0.5 + backoff.rng.random() / 2))
                    continue
                if not (is_throttling(error) or is_server_error(error)):
                    raise
            except TRANSIENT_NETWORK_ERRORS as error:
                log.warning("subscribe_to_shard.retry", shard_id=shard_id, error=str(error))
            await backoff.sleep()

    async def read(self, shard_id: str, start: StartPosition) -> AsyncIterator[ReadBatch]:
        position = start
        last_delivered: int | None = None
        last_subscribe = 0.0
        backoff = Backoff(base_s=self._min_interval_s, cap_s=10.0)
        while True:
            wait = self._min_interval_s - (time.monotonic() - last_subscribe)
            if wait > 0:
                await asyncio.sleep(wait)
            last_subscribe = time.monotonic()
            stream = await self._subscribe(shard_id, position)
            try:
                async for event in stream_events(stream):
                    if event.event_type != "SubscribeToShardEvent":
                        continue
                    body = event.payload
                    records = kinesis_records(body.get("Records") or [])
                    if last_delivered is not None:
                        records = [r for r in records if int(r.sequence_number) > last_delivered]
                    if records:
                        last_delivered = int(records[-1].sequence_number)
                    continuation = body.get("ContinuationSequenceNumber")
                    if continuation:
                        position = StartPosition.after(continuation)
                    ended = continuation is None and "ChildShards" in body
                    yield ReadBatch(
                        shard_id=shard_id,
                        records=records,
                        millis_behind_latest=body.get("MillisBehindLatest"),
                        resume_after=continuation
                        or (records[-1].sequence_number if records else None),
                        child_shard_ids=child_shard_ids(body) if ended else None,
                    )
                    backoff.reset()
                    if ended:
                        return
            except InStreamError as error:
                if error.code == "ResourceNotFoundException":
                    raise ShardGoneError(f"shard {shard_id}: {error}") from error
                if error.code in ACCESS_DENIED_CODES:
                    raise EfoUnavailableError(f"subscription denied: {error}") from error
                self.resubscribes_after_error += 1
                log.warning("subscription.error", shard_id=shard_id, error=str(error))
                await backoff.sleep()
            except TRANSIENT_NETWORK_ERRORS as error:
                self.resubscribes_after_error += 1
                log.warning("subscription.interrupted", shard_id=shard_id, error=str(error))
                await backoff.sleep()
            finally:
                stream.close()
            # The subscription ended (5-minute lifetime) or broke: renew from `position`.
