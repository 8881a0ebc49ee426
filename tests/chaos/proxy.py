"""LOCAL ONLY: fault proxies between the chaos workers and moto server.

- `OutageProxy`: a TCP proxy; while "down" it drops every open connection and closes new ones
  at once (the replica sink's endpoint: a sink outage).
- `ThrottlingProxy`: an HTTP proxy for DynamoDB that forwards to moto but answers a fraction
  of requests with DynamoDB's ProvisionedThroughputExceededException (the lease table).
- `ApplyLogProxy`: an HTTP proxy in front of the replica's moto that notes every replica write
  as it arrives (time, the sending worker from its User-Agent `app/<id>`, the change's sequence
  number from the item's `_cdc_seq`): the apply times that `leasewatch` judges.
- `ProxyThread`: runs them on one asyncio loop in a daemon thread; control is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from consumer.pipeline.replication import SEQUENCE

LOOPBACK = "127.0.0.1"
THROTTLE_BODY = (
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
    b'"message":"Rate exceeded"}'
)
# Hop-by-hop and framing headers are the proxy's own business, never forwarded.
_SKIP_REQUEST = frozenset({"host", "content-length", "connection", "transfer-encoding"})
_SKIP_RESPONSE = frozenset({"content-length", "connection", "transfer-encoding"})
_PIPE_CHUNK = 65536


class OutageProxy:
    """Forwards TCP connections to (host, port) unless it is down."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._down = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0
        self.refused = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.set_down(True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def retarget(self, upstream_host: str, upstream_port: int) -> None:
        """Before `start`: forward to another upstream (a proxy known only once started)."""
        self._upstream = (upstream_host, upstream_port)

    def set_down(self, down: bool) -> None:
        self._down = down
        if down:
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for each in (writer, up_writer):
                self._writers.discard(each)
                each.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # A connection aborted by an outage (or by its peer) just ends this direction.
    with contextlib.suppress(ConnectionError, OSError):
        while True:
            data = await reader.read(_PIPE_CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()


_WRITE_OPERATIONS = (
    ".PutItem",
    ".UpdateItem",
    ".DeleteItem",
    ".BatchWriteItem",
    ".TransactWriteItems",
)


class ThrottlingProxy:
    """An HTTP proxy to a DynamoDB endpoint that throttles `rate` of the requests."""

    def __init__(self, upstream_url: str, seed: int) -> None:
        self._upstream = upstream_url.rstrip("/")
        self._random = random.Random(seed)
        self.rate = 0.0
        self.port = 0
        self.requests = 0
        self.throttled = 0
        self.writes = 0  # requests that DynamoDB bills as writes (the benchmarks count them)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((LOOPBACK, 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        target = request.headers.get("X-Amz-Target", "")
        if target.endswith(_WRITE_OPERATIONS):
            self.writes += 1
        body = await request.read()
        if self.rate > 0 and self._random.random() < self.rate:
            self.throttled += 1
            return web.Response(
                status=400,
                body=THROTTLE_BODY,
                headers={"Content-Type": "application/x-amz-json-1.0"},
            )
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP_REQUEST}
        try:
            async with self._session.request(
                request.method, self._upstream + request.path_qs, headers=headers, data=body
            ) as upstream:
                payload = await upstream.read()
                out = {k: v for k, v in upstream.headers.items() if k.lower() not in _SKIP_RESPONSE}
                return web.Response(status=upstream.status, body=payload, headers=out)
        except aiohttp.ClientError as error:  # moto unreachable: a 5xx the client retries
            return web.Response(status=502, text=f"chaos proxy: upstream failed: {error!r}")


@dataclass(frozen=True)
class AppliedWrite:
    """A replica write as it reached the replica's endpoint (wall-clock seconds)."""

    at: float
    worker_id: str
    sequence_number: str


_APP_ID = re.compile(r"(?:^|\s)app/(\S+)")


def _written_items(target: str, body: bytes) -> Iterator[dict[str, Any]]:
    if not body:
        return
    try:
        request: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if target.endswith(".PutItem"):
        yield request.get("Item") or {}
    elif target.endswith(".BatchWriteItem"):
        for writes in (request.get("RequestItems") or {}).values():
            for write in writes:
                yield (write.get("PutRequest") or {}).get("Item") or {}


class ApplyLogProxy(ThrottlingProxy):
    """Forwards to the replica's endpoint (never throttles) and notes each replica write."""

    def __init__(self, upstream_url: str) -> None:
        super().__init__(upstream_url, seed=0)
        self.applied: list[AppliedWrite] = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        at = time.time()  # on arrival: the moment the write can take effect
        target = request.headers.get("X-Amz-Target", "")
        match = _APP_ID.search(request.headers.get("User-Agent", ""))
        worker_id = match.group(1) if match else "?"
        for item in _written_items(target, await request.read()):
            token = str((item.get(SEQUENCE) or {}).get("S", ""))
            if token:
                # sequence_token: 56 digits of sequence number, then 8 of sub-sequence.
                self.applied.append(AppliedWrite(at, worker_id, str(int(token[:-8] or "0"))))
        return await super()._handle(request)


class ProxyThread:
    """The proxies on one event loop in a daemon thread. With `applies`, the outage proxy
    forwards to it (worker -> outage -> apply log -> moto): only writes that pass are noted."""

    def __init__(
        self,
        outage: OutageProxy,
        throttle: ThrottlingProxy,
        applies: ApplyLogProxy | None = None,
    ) -> None:
        self.outage = outage
        self.throttle = throttle
        self.applies = applies
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        if self.applies is not None:
            self._call(self.applies.start())
            self.outage.retarget(LOOPBACK, self.applies.port)
        self._call(self.outage.start())
        self._call(self.throttle.start())

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self.outage.stop())
        self._call(self.throttle.stop())
        if self.applies is not None:
            self._call(self.applies.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def set_outage(self, down: bool) -> None:
        self._loop.call_soon_threadsafe(self.outage.set_down, down)

    def set_throttle_rate(self, rate: float) -> None:
        self._loop.call_soon_threadsafe(setattr, self.throttle, "rate", rate)
