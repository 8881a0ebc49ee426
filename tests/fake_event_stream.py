"""A SubscribeToShard endpoint on loopback that speaks AWS's event-stream framing.

kinesis-mock never sends ChildShards over EFO, never sends in-stream errors and never sends the
`initial-response` event AWS sends. This small aiohttp server does exactly what each test
scripts, so those paths run through the real aiobotocore client and botocore's parser.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from consumer.sources.event_frames import encode_event, encode_message


def record(sequence_number: int, data: bytes) -> dict[str, Any]:
    return {
        "SequenceNumber": str(sequence_number),
        "ApproximateArrivalTimestamp": 1_700_000_000.123,
        "Data": base64.b64encode(data).decode(),
        "PartitionKey": "pk",
    }


def shard_event(
    records: list[dict[str, Any]],
    continuation: str | None,
    child_shards: list[str] | None = None,
    millis_behind: int = 0,
) -> bytes:
    payload: dict[str, Any] = {"Records": records, "MillisBehindLatest": millis_behind}
    if continuation is not None:
        payload["ContinuationSequenceNumber"] = continuation
    if child_shards is not None:
        payload["ChildShards"] = [
            {"ShardId": child, "ParentShards": ["shardId-000000000000"], "HashKeyRange": {}}
            for child in child_shards
        ]
    return encode_event("SubscribeToShardEvent", json.dumps(payload).encode())


INITIAL_RESPONSE = encode_event("initial-response", b"{}")

# A script turns (call number, request body) into an HTTP status and the frames to send.
Script = Callable[[int, dict[str, Any]], tuple[int, list[bytes]]]


@dataclass
class FakeKinesis:
    script: Script
    calls: list[dict[str, Any]] = field(default_factory=list)
    chunk_size: int | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        target = request.headers.get("X-Amz-Target", "")
        if not target.endswith("SubscribeToShard"):
            return web.json_response({"__type": "UnknownOperationException"}, status=400)
        self.calls.append(body)
        status, frames = self.script(len(self.calls), body)
        if status != 200:
            error = frames[0].decode() if frames else "InternalFailure"
            return web.json_response({"__type": error, "message": error}, status=status)
        response = web.StreamResponse(status=200)
        response.content_type = "application/vnd.amazon.eventstream"
        await response.prepare(request)
        data = b"".join(frames)
        step = self.chunk_size or len(data) or 1
        for start in range(0, len(data), step):
            await response.write(data[start : start + step])
            await asyncio.sleep(0)
        await response.write_eof()
        return response


@asynccontextmanager
async def serve(fake: FakeKinesis) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def exception_frame(code: str, message: str = "boom") -> bytes:
    return encode_exception(code, message)


def encode_exception(exception_type: str, message: str) -> bytes:
    """An error delivered inside the stream, as AWS does for e.g. ResourceNotFoundException."""
    payload = json.dumps({"message": message}).encode()
    return encode_message(
        {
            ":message-type": "exception",
            ":exception-type": exception_type,
            ":content-type": "application/json",
        },
        payload,
    )
