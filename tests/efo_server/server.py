"""A stateful SubscribeToShard server for tests, in front of kinesis-mock.

kinesis-mock's own SubscribeToShard is kinder than AWS in ways that hide bugs: it never ends a
subscription on a closed shard (no null ContinuationSequenceNumber, no ChildShards, it keeps
sending empty events after UpdateShardCount), it accepts a second subscription for the same
consumer and shard at once (AWS: ResourceInUseException within 5 s of the last successful call),
and it omits the `initial-response` event. This server implements SubscribeToShard the way the
AWS API reference describes it, on top of kinesis-mock's shard data (GetShardIterator and
GetRecords, which do know about splits, merges and ChildShards), and proxies every other call
to kinesis-mock unchanged.

Rules enforced (AWS Kinesis API reference, SubscribeToShard and SubscribeToShardEvent,
https://docs.aws.amazon.com/kinesis/latest/APIReference/API_SubscribeToShard.html):

- "If you call SubscribeToShard again with the same ConsumerARN and ShardId within 5 seconds of
  a successful call, you'll get a ResourceInUseException. If you call SubscribeToShard 5 seconds
  or more after a successful call, the second call takes over the subscription and the previous
  connection expires or fails with a ResourceInUseException."
- A subscription lives up to 5 minutes ("the connection ... persists for up to 5 minutes").
- The stream starts with an `initial-response` event; each SubscribeToShardEvent carries
  Records, ContinuationSequenceNumber and MillisBehindLatest. "ContinuationSequenceNumber ...
  [is] null when the shard is closed and all records have been delivered; then ChildShards
  lists the shard's children" (SubscribeToShardEvent), and the subscription ends.
- A consumer that does not exist (deregistered) is ResourceNotFoundException, before the stream
  starts or inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from consumer.sources.event_frames import encode_event
from tests.fake_event_stream import encode_exception

TARGET_PREFIX = "Kinesis_20131202."
# kinesis-mock reads the region from the credential scope; it does not check signatures.
_UPSTREAM_HEADERS = {
    "Content-Type": "application/x-amz-json-1.1",
    "Authorization": (
        "AWS4-HMAC-SHA256 Credential=000000000000/20260101/us-east-1/kinesis/aws4_request, "
        "SignedHeaders=host, Signature=0"
    ),
    "X-Amz-Date": "20260101T000000Z",
}
_HOP_BY_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class EfoRules:
    """The server's timings: AWS's by default; tests may shorten the lifetime and polling."""

    takeover_s: float = 5.0  # ResourceInUse within this long after a successful call
    lifetime_s: float = 300.0  # a subscription ends after this long
    poll_interval_s: float = 0.2  # how often an idle subscription looks for new records
    heartbeat_s: float = 1.0  # an empty event at least this often when nothing arrives
    consumer_check_s: float = 1.0  # how often a live subscription checks its consumer exists


@dataclass
class _Subscription:
    consumer_arn: str
    shard_id: str
    taken_over: asyncio.Event = field(default_factory=asyncio.Event)


class UpstreamError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(body.decode(errors="replace"))
        self.status = status
        self.body = body

    @property
    def code(self) -> str:
        try:
            return str(json.loads(self.body).get("__type", "")).split("#")[-1]
        except ValueError:
            return ""


@dataclass
class EfoServer:
    """The server's state; `stats` counts what it answered, for tests to assert on."""

    upstream: str
    rules: EfoRules = field(default_factory=EfoRules)
    url: str = ""  # set once serving
    stats: Counter[str] = field(default_factory=Counter)
    # (consumer ARN, shard) -> monotonic time of the last successful SubscribeToShard
    last_success: dict[tuple[str, str], float] = field(default_factory=dict)
    active: dict[tuple[str, str], _Subscription] = field(default_factory=dict)
    shard_end_events: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None

    async def _call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._session is not None
        headers = {**_UPSTREAM_HEADERS, "X-Amz-Target": TARGET_PREFIX + operation}
        async with self._session.post(self.upstream, json=body, headers=headers) as response:
            raw = await response.read()
            if response.status >= 300:
                raise UpstreamError(response.status, raw)
            answer: dict[str, Any] = json.loads(raw) if raw else {}
            return answer

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        target = request.headers.get("X-Amz-Target", "")
        body = await request.read()
        if target == TARGET_PREFIX + "SubscribeToShard":
            return await self._subscribe(request, json.loads(body))
        return await self._proxy(request, body)

    async def _proxy(self, request: web.Request, body: bytes) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._session.post(self.upstream, data=body, headers=headers) as response:
            raw = await response.read()
            self.stats["proxied"] += 1
            return web.Response(
                status=response.status,
                body=raw,
                headers={"Content-Type": response.headers.get("Content-Type", "")},
            )

    def _error(self, status: int, code: str, message: str) -> web.Response:
        self.stats[code] += 1
        return web.json_response(
            {"__type": code, "message": message},
            status=status,
            content_type="application/x-amz-json-1.1",
        )

    async def _consumer_exists(self, consumer_arn: str) -> bool:
        try:
            described = await self._call("DescribeStreamConsumer", {"ConsumerARN": consumer_arn})
        except UpstreamError as error:
            if error.code == "ResourceNotFoundException":
                return False
            raise
        return bool(described["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE")

    async def _subscribe(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        consumer_arn = str(body["ConsumerARN"])
        shard_id = str(body["ShardId"])
        stream_arn = consumer_arn.split("/consumer/")[0]
        if not await self._consumer_exists(consumer_arn):
            message = f"Consumer {consumer_arn} not found"
            return self._error(400, "ResourceNotFoundException", message)
        key = (consumer_arn, shard_id)
        now = time.monotonic()
        last = self.last_success.get(key)
        if last is not None and now - last < self.rules.takeover_s:
            return self._error(
                400,
                "ResourceInUseException",
                f"Another active subscription exists for consumer {consumer_arn} and {shard_id}",
            )
        start = body.get("StartingPosition", {})
        iterator_args: dict[str, Any] = {
            "StreamARN": stream_arn,
            "ShardId": shard_id,
            "ShardIteratorType": start.get("Type"),
        }
        if "SequenceNumber" in start:
            iterator_args["StartingSequenceNumber"] = start["SequenceNumber"]
        if "Timestamp" in start:
            iterator_args["Timestamp"] = start["Timestamp"]
        try:
            iterator = (await self._call("GetShardIterator", iterator_args))["ShardIterator"]
        except UpstreamError as error:
            self.stats[error.code or "upstream_error"] += 1
            return web.Response(status=error.status, body=error.body)
        continuation = start.get("SequenceNumber")
        if continuation is None and start.get("Type") == "TRIM_HORIZON":
            continuation = await self._shard_start(stream_arn, shard_id)
        self.last_success[key] = now
        previous = self.active.get(key)
        if previous is not None:
            previous.taken_over.set()
            self.stats["taken_over"] += 1
        subscription = _Subscription(consumer_arn, shard_id)
        self.active[key] = subscription
        self.stats["subscribed"] += 1
        response = web.StreamResponse(status=200)
        response.content_type = "application/vnd.amazon.eventstream"
        await response.prepare(request)
        try:
            await response.write(encode_event("initial-response", b"{}"))
            await self._pump(response, subscription, iterator, continuation)
            await response.write_eof()
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            self.stats["client_gone"] += 1
        finally:
            if self.active.get(key) is subscription:
                del self.active[key]
        return response

    async def _shard_start(self, stream_arn: str, shard_id: str) -> str | None:
        """The shard's StartingSequenceNumber: below every record, so a continuation from it
        skips nothing."""
        listing = await self._call(
            "ListShards",
            {"StreamARN": stream_arn, "ShardFilter": {"Type": "AT_TRIM_HORIZON"}},
        )
        for shard in listing.get("Shards", []):
            if shard["ShardId"] == shard_id:
                return str(shard["SequenceNumberRange"]["StartingSequenceNumber"])
        return None

    async def _pump(
        self,
        response: web.StreamResponse,
        subscription: _Subscription,
        iterator: str,
        continuation: str | None,
    ) -> None:
        started = time.monotonic()
        last_event = 0.0
        last_consumer_check = started
        while time.monotonic() - started < self.rules.lifetime_s:
            if subscription.taken_over.is_set():
                # "the previous connection expires or fails with a ResourceInUseException"
                await response.write(
                    encode_exception("ResourceInUseException", "taken over by a newer call")
                )
                return
            now = time.monotonic()
            if now - last_consumer_check >= self.rules.consumer_check_s:
                last_consumer_check = now
                if not await self._consumer_exists(subscription.consumer_arn):
                    self.stats["in_stream_ResourceNotFoundException"] += 1
                    await response.write(
                        encode_exception(
                            "ResourceNotFoundException",
                            f"Consumer {subscription.consumer_arn} not found",
                        )
                    )
                    return
            page = await self._call("GetRecords", {"ShardIterator": iterator, "Limit": 1000})
            records = page.get("Records", [])
            if records:
                continuation = records[-1]["SequenceNumber"]
            next_iterator = page.get("NextShardIterator")
            if next_iterator is None:
                children = [child["ShardId"] for child in page.get("ChildShards", [])]
                event = {
                    "Records": records,
                    "ContinuationSequenceNumber": None,
                    "MillisBehindLatest": page.get("MillisBehindLatest", 0),
                    "ChildShards": page.get("ChildShards", []),
                }
                await response.write(_event(event))
                self.shard_end_events.append((subscription.shard_id, tuple(children)))
                self.stats["shard_end_sent"] += 1
                return
            iterator = next_iterator
            if records or time.monotonic() - last_event >= self.rules.heartbeat_s:
                event = {
                    "Records": records,
                    "MillisBehindLatest": page.get("MillisBehindLatest", 0),
                }
                if continuation is not None:
                    event["ContinuationSequenceNumber"] = continuation
                await response.write(_event(event))
                last_event = time.monotonic()
            if not records:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        subscription.taken_over.wait(), timeout=self.rules.poll_interval_s
                    )
        self.stats["expired"] += 1


def _event(payload: dict[str, Any]) -> bytes:
    return encode_event("SubscribeToShardEvent", json.dumps(payload).encode())
