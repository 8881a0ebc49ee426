"""Enhanced fan-out: SubscribeToShard through aiobotocore, renewed every 5 minutes (README,
"Enhanced fan-out"): a renewal, also after an error, starts AFTER the last continuation and
drops any record at or below the last one delivered. Shard end: see closed_shards.py."""

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

from consumer.aws.backoff import Backoff
from consumer.aws.errors import TRANSIENT_NETWORK_ERRORS, error_code, is_retryable
from consumer.records.batch import ReadBatch
from consumer.sources.closed_shards import ClosedShardCheck
from consumer.sources.initial_response import RAW_STREAM, SubscriptionStream
from consumer.sources.lean import child_shard_ids, kinesis_records
from consumer.sources.model import EfoUnavailableError, ReaderError, ShardGoneError, StartPosition
from consumer.sources.registration import ACCESS_DENIED_CODES, StreamConsumer

log = structlog.get_logger(__name__)

SUBSCRIBE_MIN_INTERVAL_S = 1.0  # SubscribeToShard: 1 call/s per consumer per shard
RESOURCE_IN_USE_WAIT_S = 1.0  # the retry after ResourceInUseException (see _recovered)
# Idle checks of a closed shard that found records still to come, before warning that the
# subscription is not delivering them.
STALLED_CHECKS_BEFORE_WARNING = 3


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One decoded message of a subscription stream."""

    event_type: str
    payload: dict[str, Any]
    # When the chunk that completed it came off the socket (monotonic s): the added latency's
    # start, before the decode of the event and its records.
    read_at: float | None = None


class InStreamError(Exception):
    """An error AWS delivered inside the event stream (`:message-type` exception)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


async def stream_events(stream: SubscriptionStream) -> AsyncIterator[StreamEvent]:
    """Decodes the raw event stream: one orjson parse per event, nothing else."""
    buffer = EventStreamBuffer()
    async for chunk in stream.remaining_chunks():
        read_at = time.monotonic()
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
            yield StreamEvent(str(headers.get(":event-type", "")), payload, read_at)


class EfoReader:
    """Reads shards through one registered stream consumer.

    `client` is an aiobotocore Kinesis client prepared with `install_subscription_stream`.
    `consumer` is the consumer's ARN or a StreamConsumer shared by the worker's readers.
    `closed_check` decides shard end from the shard list when the event stream never says so
    (by default one for the consumer's stream, checking an idle shard every 5 s).
    """

    def __init__(
        self,
        client: Any,
        consumer: str | StreamConsumer,
        min_subscribe_interval_s: float = SUBSCRIBE_MIN_INTERVAL_S,
        in_use_wait_s: float = RESOURCE_IN_USE_WAIT_S,
        closed_check: ClosedShardCheck | None = None,
    ) -> None:
        self._client = client
        self.consumer = (
            consumer if isinstance(consumer, StreamConsumer) else StreamConsumer(client, consumer)
        )
        self._min_interval_s = min_subscribe_interval_s
        self._in_use_wait_s = in_use_wait_s
        self.closed_check = closed_check or ClosedShardCheck(client, self.consumer.stream_arn)
        self.resubscribes_after_error = 0
        self.in_use_retries = 0

    async def _recovered(
        self, code: str, error: Exception, shard_id: str, consumer_arn: str, backoff: Backoff
    ) -> bool:
        """Handles what SubscribeToShard and its event stream both may end with: True when the
        caller subscribes again at once (the consumer registered again, ResourceInUseException
        waited out); raises ShardGoneError or EfoUnavailableError; False for anything else."""
        if code == "ResourceNotFoundException":
            # The shard is gone only if the consumer is not (see registration.py).
            if not await self.consumer.is_gone(consumer_arn):
                raise ShardGoneError(f"shard {shard_id}: {error}") from error
            await self.consumer.reregister(consumer_arn)
            return True
        if code in ACCESS_DENIED_CODES:
            what = "subscription" if isinstance(error, InStreamError) else "SubscribeToShard"
            raise EfoUnavailableError(f"{what} denied: {error}") from error
        if code == "ResourceInUseException":
            # A subscription (ours before a reconnect, or a dead owner's) was made less than 5 s
            # ago; after 5 s a new call takes over. kinesis-mock accepts the call, then refuses
            # inside the stream; AWS refuses the call itself. Retry at the call rate, 1 call/s,
            # not a growing backoff (that turned a 2 s hold into 10-36 s stalls after kill -9).
            self.in_use_retries += 1
            await asyncio.sleep(self._in_use_wait_s * (1.0 + backoff.rng.random() / 4))
            return True
        return False

    async def _subscribe(self, shard_id: str, position: StartPosition) -> SubscriptionStream:
        backoff = Backoff(base_s=self._min_interval_s, cap_s=10.0)
        while True:
            consumer_arn = self.consumer.arn
            try:
                response = await self._client.subscribe_to_shard(
                    ConsumerARN=consumer_arn,
                    ShardId=shard_id,
                    StartingPosition=position.iterator_args("Type", "SequenceNumber"),
                )
                stream = response.get(RAW_STREAM)
                if not isinstance(stream, SubscriptionStream):
                    raise ReaderError(
                        "SubscribeToShard response has no raw stream: "
                        "call install_subscription_stream(client) first"
                    )
                return stream
            except ClientError as error:
                if await self._recovered(error_code(error), error, shard_id, consumer_arn, backoff):
                    continue
                if not is_retryable(error):
                    raise
            except TRANSIENT_NETWORK_ERRORS as error:
                log.warning("subscribe_to_shard.retry", shard_id=shard_id, error=str(error))
            await backoff.sleep()

    async def read(self, shard_id: str, start: StartPosition) -> AsyncIterator[ReadBatch]:
        position = start
        last_delivered: int | None = None
        last_subscribe = 0.0
        backoff = Backoff(base_s=self._min_interval_s, cap_s=10.0)
        idle_since_check = time.monotonic()
        stalled_checks = 0
        while True:
            wait = self._min_interval_s - (time.monotonic() - last_subscribe)
            if wait > 0:
                await asyncio.sleep(wait)
            last_subscribe = time.monotonic()
            stream = await self._subscribe(shard_id, position)
            consumer_arn = self.consumer.arn
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
                    resume_after = continuation or (
                        records[-1].sequence_number if records else None
                    )
                    if resume_after:
                        position = StartPosition.after(resume_after)
                    ended = continuation is None and "ChildShards" in body
                    children = child_shard_ids(body) if ended else None
                    if records or body.get("MillisBehindLatest"):  # not at the tip
                        idle_since_check = time.monotonic()
                    elif (
                        children is None
                        and time.monotonic() - idle_since_check >= self.closed_check.interval_s
                    ):
                        idle_since_check = time.monotonic()
                        state = await self.closed_check.state(shard_id, position)
                        children = state.children
                        stalled_checks = stalled_checks + 1 if state.closed else 0
                        if children is not None:
                            log.warning(
                                "efo.shard_end_from_shard_list",
                                shard_id=shard_id,
                                children=list(children),
                                reason="closed in ListShards and read to its end, but the "
                                "subscription never ended with ChildShards",
                            )
                        elif stalled_checks == STALLED_CHECKS_BEFORE_WARNING:
                            log.warning(
                                "efo.closed_shard_not_delivering",
                                shard_id=shard_id,
                                reason="the shard is closed and has records after the last "
                                "one delivered, but the subscription sends none",
                            )
                    yield ReadBatch(
                        shard_id=shard_id,
                        records=records,
                        millis_behind_latest=body.get("MillisBehindLatest"),
                        resume_after=resume_after,
                        child_shard_ids=children,
                        read_at=event.read_at,
                    )
                    backoff.reset()
                    if children is not None:
                        return
            except InStreamError as error:
                if error.code == "ResourceInUseException":
                    log.info("subscription.in_use", shard_id=shard_id, error=str(error))
                if await self._recovered(error.code, error, shard_id, consumer_arn, backoff):
                    continue
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
