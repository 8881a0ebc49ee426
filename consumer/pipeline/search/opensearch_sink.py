"""The search sink for OpenSearch (managed domains, serverless collections, self-managed).

One document per item key (`document.py`), written with external versioning through `_bulk`
(`bulk.py`): the newest change per key wins whatever order changes arrive in, duplicates are
harmless, and deletes leave versioned tombstones, so the index converges to the table
(DESIGN.md invariant 2). Searches must leave tombstones out (`queries.live_only`).

Failures:
- a bulk item refused with 429 or 5xx is sent again, with backoff, up to `max_retries` more
  rounds; if it still fails it is reported as a retryable per-record failure;
- a bulk item refused otherwise (mapper_parsing_exception, an invalid id, ...) is reported as
  a non-retryable per-record failure (the pipeline parks it in the dead-letter queue), and so
  is a change whose key or document is invalid;
- a whole request that was throttled (429), failed with a 5xx, timed out or could not connect
  is retried with backoff up to `max_retries` times, then `write` raises a retryable
  SinkError; other request failures (authentication, TLS verification, a malformed request)
  raise at once. A single document too large for a request (413) is that record's failure.

Tombstones are kept forever: removing one is safe only once no older change of that key can
arrive any more, and `consumer replay` can re-deliver changes as old as the stream's
retention (up to 365 days). They are small (keys and change metadata), and not purged here.

Serverless collections (service "aoss") are written the same way: search collections accept
custom document ids; time series collections do not, so they cannot hold one document per key
and are not supported. Whether a collection honors `version_type` external_gte could not be
checked here (no access to AWS): if it refused it, every document would fail with a 400 and
land in the dead-letter queue, never silently. The sink never calls `_refresh`, which
serverless collections do not offer.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import structlog
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import ConnectionError as TransportConnectionError
from opensearchpy.exceptions import RequestError, TransportError

from consumer.backoff import Backoff
from consumer.pipeline.search.bulk import EncodedWrite, bulk_body, bulk_chunks, item_outcomes
from consumer.pipeline.search.client import build_client
from consumer.pipeline.search.document import DocumentWrite, plan_writes
from consumer.pipeline.search.settings import OpenSearchSettings
from consumer.pipeline.sink import Failures, SinkError
from consumer.records import ChangeEvent

_T = TypeVar("_T")

log = structlog.get_logger(__name__)

# Created on first use when `create_index` is set. Item attributes are mapped dynamically.
INDEX_BODY: dict[str, Any] = {
    "mappings": {
        "properties": {
            "deleted": {"type": "boolean"},
            "keys": {"type": "object"},
            "item": {"type": "object"},
            "change": {
                "properties": {
                    "event_id": {"type": "keyword"},
                    "event_name": {"type": "keyword"},
                    "table": {"type": "keyword"},
                    "created_at": {"type": "date"},
                    "version": {"type": "long"},
                    "ttl_delete": {"type": "boolean"},
                }
            },
        }
    }
}


class RequestFailed(SinkError):
    """A whole request failed; `status` is its HTTP status, or None (no response)."""

    def __init__(self, message: str, *, status: int | None, retryable: bool) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status


class OpenSearchSink:
    """The "search" sink for an OpenSearch endpoint. Not buffered: `write` returns when
    OpenSearch has acknowledged every document it does not report as failed.

    `client` replaces the client built from `settings` (built on first use otherwise); the
    sink closes whichever it uses in `aclose`.
    """

    def __init__(
        self, settings: OpenSearchSettings, *, client: AsyncOpenSearch | None = None
    ) -> None:
        self._settings = settings
        self._client = client
        self._index_ready = not settings.create_index

    @property
    def name(self) -> str:
        return "search"

    @property
    def buffered(self) -> bool:
        return False

    @property
    def collapses_per_key(self) -> bool:
        """Writes only the newest change per document of a batch (see ShardPipeline)."""
        return True

    @property
    def settings(self) -> OpenSearchSettings:
        return self._settings

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        plan = plan_writes(events)
        failures: dict[int, SinkError] = dict(plan.failures)
        if plan.writes:
            client = await self._ready_client()
            failures.update(await self._write_all(client, plan.writes))
        return failures

    def wants_flush(self, now_monotonic: float) -> bool:
        return False

    async def flush(self) -> None:
        return None

    async def check(self) -> None:
        """At start-up: the endpoint answers and the index exists (or is created)."""
        await self._ready_client()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # --- internals ------------------------------------------------------------------------

    async def _ready_client(self) -> AsyncOpenSearch:
        if self._client is None:
            self._client = build_client(self._settings)
        client = self._client
        if not self._index_ready:
            await self._ensure_index(client)
            self._index_ready = True
        return client

    async def _ensure_index(self, client: AsyncOpenSearch) -> None:
        index = self._settings.index
        if await self._call(lambda: client.indices.exists(index=index), "index check"):
            return
        try:
            await self._call(lambda: client.indices.create(index=index, body=INDEX_BODY), "create")
        except RequestFailed as error:
            # Another worker created it first.
            if not isinstance(error.__cause__, RequestError) or (
                error.__cause__.error != "resource_already_exists_exception"
            ):
                raise

    async def _write_all(
        self, client: AsyncOpenSearch, writes: Sequence[DocumentWrite]
    ) -> dict[int, SinkError]:
        """Write, resend what was throttled, return what failed."""
        failures: dict[int, SinkError] = {}
        backoff = self._backoff()
        pending = list(writes)
        for round_number in range(self._settings.max_retries + 1):
            retry: list[DocumentWrite] = []
            for chunk in bulk_chunks(pending, self._settings.max_bulk_bytes):
                for (write, _), error in zip(
                    chunk, await self._send_chunk(client, chunk), strict=True
                ):
                    if error is None:
                        continue
                    if error.retryable and round_number < self._settings.max_retries:
                        retry.append(write)
                    else:
                        failures[write.index] = error
            if not retry:
                break
            log.info("search documents resent", count=len(retry), round=round_number + 1)
            await backoff.sleep()
            pending = retry
        return failures

    async def _send_chunk(
        self, client: AsyncOpenSearch, chunk: list[EncodedWrite]
    ) -> list[SinkError | None]:
        body = bulk_body(chunk)
        index = self._settings.index
        try:
            response = await self._call(lambda: client.bulk(body=body, index=index), "bulk")
        except RequestFailed as error:
            if error.status == 413 and len(chunk) == 1:
                message = f"document {chunk[0][0].doc_id}: too large for one request ({error})"
                return [SinkError(message, retryable=False)]
            raise
        return item_outcomes(response, chunk)

    async def _call(self, request: Callable[[], Awaitable[_T]], what: str) -> _T:
        """`request()`, retried with backoff while it fails in a way worth retrying."""
        backoff = self._backoff()
        attempt = 0
        while True:
            try:
                return await request()
            except TransportError as error:
                failure = _request_failure(error, what)
                if not failure.retryable or attempt >= self._settings.max_retries:
                    raise failure from error
                log.info("search request retried", request=what, status=failure.status)
            attempt += 1
            await backoff.sleep()

    def _backoff(self) -> Backoff:
        return Backoff(base_s=self._settings.retry_base_s, cap_s=self._settings.retry_cap_s)


def _request_failure(error: TransportError, what: str) -> RequestFailed:
    """Classify a failed request: 429, 5xx, timeouts and connection failures are retryable;
    certificate failures, 4xx and anything else are not."""
    if isinstance(error, TransportConnectionError):
        cause = error.info
        if isinstance(cause, ssl.SSLError):
            return RequestFailed(
                f"search {what}: TLS failure: {cause}", status=None, retryable=False
            )
        return RequestFailed(f"search {what}: {error.error}", status=None, retryable=True)
    status = error.status_code if isinstance(error.status_code, int) else None
    retryable = status is not None and (status == 429 or status >= 500)
    return RequestFailed(
        f"search {what}: HTTP {status}: {error.error}", status=status, retryable=retryable
    )
