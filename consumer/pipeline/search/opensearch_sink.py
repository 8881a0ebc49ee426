"""The search sink for OpenSearch (managed domains, serverless collections, self-managed).

One document per item key (`document.py`), written with external versions through `_bulk`
(`bulk.py`); the index is created with the sink's mapping (`mapping.py`) when missing and its
mapping checked at start. Refusals: `faults.py`; 429/5xx items and requests throttled, failing
with 5xx or unreachable are retried here up to `max_retries` times first. Tombstones are kept
forever: `consumer replay` can re-deliver changes as old as the stream's retention (365 days).

Serverless: search collections accept custom ids (time series collections do not, and are
not supported); whether they honour `external_gte` is unverified (a refusal would park every
document with a 400, never silently). `_refresh`, which they lack, is never called.
"""

from __future__ import annotations

import functools
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson
import structlog
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import ConnectionError as TransportConnectionError
from opensearchpy.exceptions import RequestError, TransportError

from consumer.aws.backoff import Backoff
from consumer.aws.fencing import check_fence
from consumer.pipeline.search.bulk import (
    TIE_VERSION_TYPE,
    VERSION_TYPE,
    EncodedWrite,
    bulk_body,
    bulk_chunks,
    item_outcomes,
)
from consumer.pipeline.search.client import build_client
from consumer.pipeline.search.document import DocumentWrite, plan_writes
from consumer.pipeline.search.faults import (
    ACCESS_DENIED_STATUSES,
    DestinationRefused,
    is_transient,
)
from consumer.pipeline.search.mapping import INDEX_BODY, mapping_problems
from consumer.pipeline.search.settings import OpenSearchSettings
from consumer.pipeline.search.ties import tie_rewrite, with_tie_fields
from consumer.pipeline.sink import Failures, SinkError
from consumer.records import ChangeEvent

_T = TypeVar("_T")

log = structlog.get_logger(__name__)

# A destination fault is logged at most this often per error type (it lasts: a write block,
# revoked access); `destination_faults` counts every one.
_FAULT_LOG_INTERVAL_S = 10.0

class RequestFailed(SinkError):
    """A whole request failed; `status` is its HTTP status, or None (no response).
    `retried_here`: worth another try at once (throttled, 5xx, no connection)."""

    def __init__(
        self, message: str, *, status: int | None, retryable: bool, retried_here: bool = False
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status
        self.retried_here = retried_here


class IndexUnusable(RequestFailed):
    """The index is missing (and may not be created) or its mapping cannot hold every item.
    Retryable: while the sink runs, that holds the shard; at start it is a start-up error."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=None, retryable=True)


class OpenSearchSink:
    """The "search" sink for an OpenSearch endpoint. Not buffered: `write` returns when
    OpenSearch has acknowledged every document it does not report as failed.

    `client` replaces the client built from `settings` (built on first use otherwise); the
    sink closes whichever it uses in `aclose`.
    """

    name = "search"
    buffered = False
    collapses_per_key = True  # writes only the newest change per document of a batch

    def __init__(
        self, settings: OpenSearchSettings, *, client: AsyncOpenSearch | None = None
    ) -> None:
        self.settings = settings
        self._client = client
        self._index_ready = False
        # Destination faults by OpenSearch error type, since start (metrics read it).
        self.destination_faults: Counter[str] = Counter()
        self._fault_logged_at: dict[str, float] = {}

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        plan = plan_writes(events)
        failures: dict[int, SinkError] = dict(plan.failures)
        if plan.writes:
            client = await self._ready_client()
            failures.update(await self._write_all(client, plan.writes))
        return failures

    async def check(self) -> None:
        """At start-up: the endpoint answers, the index exists (or is created) and its mapping
        can hold every item."""
        await self._ready_client()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # --- internals ------------------------------------------------------------------------

    async def _ready_client(self) -> AsyncOpenSearch:
        if self._client is None:
            self._client = build_client(self.settings)
        client = self._client
        if not self._index_ready:
            await self._ensure_index(client)
            self._index_ready = True
        return client

    async def _ensure_index(self, client: AsyncOpenSearch) -> None:
        index = self.settings.index
        if not await self._call(lambda: client.indices.exists(index=index), "index check"):
            if not self.settings.create_index:
                raise IndexUnusable(
                    f"search index {index} does not exist and create_index is off: create it "
                    "with infra/opensearch/index.json"
                )
            try:
                await self._call(
                    lambda: client.indices.create(index=index, body=INDEX_BODY), "create"
                )
            except RequestFailed as error:
                # Another worker created it first.
                if not isinstance(error.__cause__, RequestError) or (
                    error_type(error.__cause__) != "resource_already_exists_exception"
                ):
                    raise
        response = await self._call(lambda: client.indices.get_mapping(index=index), "mapping")
        problems = _mapping_problems(response)
        if problems:
            raise IndexUnusable(
                f"search index {index} has an incompatible mapping ({'; '.join(problems)}): "
                "point pipelines.search.index at a new index, which the sink creates, and "
                "replay into it (README: Search index)"
            )

    async def _write_all(
        self, client: AsyncOpenSearch, writes: Sequence[DocumentWrite]
    ) -> dict[int, SinkError]:
        """Write, resend what was throttled, decide ties, return what failed."""
        conflicted: list[DocumentWrite] = []
        pending = [with_tie_fields(write) for write in writes]
        failures = await self._write_rounds(client, pending, VERSION_TYPE, conflicted)
        if conflicted:
            # Conflicts at equal versions are ties, decided from the images (ties.py).
            winners = await self._tie_winners(client, conflicted)
            failures.update(await self._write_rounds(client, winners, TIE_VERSION_TYPE, []))
        return failures

    async def _write_rounds(
        self,
        client: AsyncOpenSearch,
        pending: list[DocumentWrite],
        version_type: str,
        conflicted: list[DocumentWrite],
    ) -> dict[int, SinkError]:
        failures: dict[int, SinkError] = {}
        backoff = self._backoff()
        for round_number in range(self.settings.max_retries + 1):
            if not pending:
                break
            retry: list[DocumentWrite] = []
            for chunk in bulk_chunks(pending, self.settings.max_bulk_bytes, version_type):
                for (write, _), error in zip(
                    chunk, await self._send_chunk(client, chunk, conflicted), strict=True
                ):
                    if error is None:
                        continue
                    if isinstance(error, DestinationRefused):
                        # It lasts (a write block, revoked access): the pipeline's backoff
                        # waits it out, holding the shard.
                        self._count_fault(error)
                        failures[write.index] = error
                    elif error.retryable and round_number < self.settings.max_retries:
                        retry.append(write)
                    else:
                        failures[write.index] = error
            if retry:
                log.info("search.documents_resent", count=len(retry), round=round_number + 1)
                await backoff.sleep()
            pending = retry
        return failures

    async def _tie_winners(
        self, client: AsyncOpenSearch, conflicted: Sequence[DocumentWrite]
    ) -> list[DocumentWrite]:
        """The conflicted writes that win their tie with the stored document."""
        index = self.settings.index
        winners = []
        for write in conflicted:
            read = functools.partial(client.get, index=index, id=write.doc_id)
            try:
                found: Mapping[str, Any] = await self._call(read, "get")
            except RequestFailed as error:
                if error.status != 404:
                    raise
                continue  # gone since the conflict: nothing to decide against
            rewrite = tie_rewrite(write, found, self.name)
            if rewrite is not None:
                winners.append(rewrite)
        return winners

    async def _send_chunk(
        self,
        client: AsyncOpenSearch,
        chunk: list[EncodedWrite],
        conflicted: list[DocumentWrite],
    ) -> list[SinkError | None]:
        """Sends one bulk request; its version conflicts are added to `conflicted`."""
        body = bulk_body(chunk)
        index = self.settings.index
        try:
            response = await self._call(lambda: client.bulk(body=body, index=index), "bulk")
        except RequestFailed as error:
            if error.status == 413 and len(chunk) == 1:
                message = f"document {chunk[0][0].doc_id}: too large for one request ({error})"
                return [SinkError(message, retryable=False)]
            raise
        outcomes, conflicts = item_outcomes(response, chunk)
        conflicted.extend(conflicts)
        return outcomes

    async def _call(self, request: Callable[[], Awaitable[_T]], what: str) -> _T:
        """`request()`, retried with backoff while it fails in a way worth retrying."""
        backoff = self._backoff()
        attempt = 0
        while True:
            check_fence()  # after a stall or a backoff the shard's lease may be gone
            try:
                return await request()
            except TransportError as error:
                failure = _request_failure(error, what)
                if isinstance(failure, DestinationRefused):
                    self._count_fault(failure)
                    raise failure from error
                if not failure.retried_here or attempt >= self.settings.max_retries:
                    raise failure from error
                log.info("search.request_retried", request=what, status=failure.status)
            attempt += 1
            await backoff.sleep()

    def _backoff(self) -> Backoff:
        return Backoff(base_s=self.settings.retry_base_s, cap_s=self.settings.retry_cap_s)

    def _count_fault(self, fault: DestinationRefused) -> None:
        kind = fault.kind
        self.destination_faults[kind] += 1
        now = time.monotonic()
        if now - self._fault_logged_at.get(kind, -_FAULT_LOG_INTERVAL_S) >= _FAULT_LOG_INTERVAL_S:
            self._fault_logged_at[kind] = now
            log.warning(
                "search.destination_refused",
                error_type=kind,
                status=fault.status,
                total=self.destination_faults[kind],
            )


def _mapping_problems(response: Mapping[str, Any]) -> list[str]:
    """The problems of the (single) index in a GET _mapping response."""
    indices = list(response.values())
    if len(indices) != 1 or not isinstance(indices[0], Mapping):
        return ["GET _mapping did not return one index"]
    mappings = indices[0].get("mappings", {})
    return mapping_problems(mappings if isinstance(mappings, Mapping) else {})


def _request_failure(error: TransportError, what: str) -> RequestFailed | DestinationRefused:
    """Classify a failed request: 429, 5xx, timeouts and connection failures are retried here
    and then retryable; 401/403 and TLS failures are destination faults (retryable, not
    retried here); other 4xx are not retryable."""
    if isinstance(error, TransportConnectionError):
        cause = error.info
        if isinstance(cause, ssl.SSLError):
            message = f"search {what}: TLS failure: {cause}"
            return DestinationRefused(message, kind="tls_failure", status=None)
        return RequestFailed(
            f"search {what}: {error.error}", status=None, retryable=True, retried_here=True
        )
    status = error.status_code if isinstance(error.status_code, int) else None
    kind = error_type(error)
    message = f"search {what}: HTTP {status}: {kind}"
    if status in ACCESS_DENIED_STATUSES:
        # security_exception from the security plugin; IAM denials have no error type.
        kind = kind if kind == "security_exception" else "access_denied"
        return DestinationRefused(message, kind=kind, status=status)
    transient = status is not None and is_transient(status)
    return RequestFailed(message, status=status, retryable=transient, retried_here=transient)


def error_type(error: TransportError) -> str:
    """OpenSearch's error type (`error.type` of the body). The async connection hands over
    the raw body text, so it is parsed here; a body without one gives "error"."""
    body: object = error.info
    if not isinstance(body, dict) and isinstance(error.error, str | bytes):
        try:
            body = orjson.loads(error.error)
        except orjson.JSONDecodeError:
            body = None
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("type"), str):
            return str(inner["type"])
        if isinstance(inner, str) and inner.isidentifier():
            return inner
    plain = error.error
    return plain if isinstance(plain, str) and plain.isidentifier() else "error"
