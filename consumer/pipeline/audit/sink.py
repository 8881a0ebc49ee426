"""AuditSink: every change as a line of gzip NDJSON in S3, ready for Athena.

`write` only buffers (per shard and table: an object never mixes them); records are durable
once `flush` has written their objects, and the pipeline checkpoints only after a flush.
Object keys are deterministic (`layout`), so a re-read from a checkpoint or a retried flush
rewrites the same objects; a record delivered again is dropped if still buffered or written by
this instance (`buffer`). Remaining duplicates share an event_id: readers de-duplicate by it
(`audit_changes_dedup` in infra/athena/). Rewrites assume one writer per shard: a worker that
lost its lease must not flush, or its stale object could replace the new owner's.

An event whose payload cannot be embedded is a non-retryable per-record failure (parked).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

from consumer.aws.backoff import Backoff
from consumer.aws.fencing import fence_requests
from consumer.pipeline.audit.buffer import Segment, ShardBuffer
from consumer.pipeline.audit.layout import ObjectLayout
from consumer.pipeline.audit.lines import LineError, audit_line
from consumer.pipeline.audit.settings import AuditSettings
from consumer.pipeline.audit.store import (
    CONTENT_ENCODING,
    CONTENT_TYPE,
    ObjectStore,
    StoreFactory,
    gzip_body,
    put_with_retries,
)
from consumer.pipeline.sink import NO_FAILURES, Failures, SinkError
from consumer.records import ChangeEvent

# Give the event loop a turn every so many records of a large batch (building lines is CPU).
_YIELD_EVERY = 2000


class AuditSink:
    """The audit pipeline's sink, for one shard or several. Give it an S3 client (`store`, the
    caller's) or a factory (`store_factory`: opened at the first flush, closed by `aclose`).
    `clock` must be the monotonic clock the pipeline passes to `wants_flush`."""

    name = "audit"
    buffered = True

    def __init__(
        self,
        settings: AuditSettings,
        *,
        store: ObjectStore | None = None,
        store_factory: StoreFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (store is None) == (store_factory is None):
            raise ValueError("give exactly one of store or store_factory")
        self.settings = settings
        self._store = store
        fence_requests(store)  # each PutObject checks the writing shard's lease
        self._store_factory = store_factory
        self._clock = clock
        self._layout = ObjectLayout(settings.prefix)
        self._buffers: dict[tuple[str, str], ShardBuffer] = {}  # by (shard_id, table)
        self._exit_stack = AsyncExitStack()
        self._flush_lock = asyncio.Lock()
        self._closed = False

    @property
    def pending_records(self) -> int:
        """Records accepted and not yet durable."""
        return sum(buffer.pending_records for buffer in self._buffers.values())

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        """Buffers every event; returns those whose payload cannot be embedded (non-retryable).
        Duplicates of buffered or already written records are accepted and dropped."""
        failures: dict[int, SinkError] = {}
        verify_json = self.settings.verify_json
        buffers = self._buffers
        now = self._clock()
        for index, event in enumerate(events):
            if index and index % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
                now = self._clock()
            try:
                line = audit_line(event, verify_json=verify_json)
            except LineError as error:
                failures[index] = SinkError(
                    f"audit: cannot write {event.position}: {error}", retryable=False
                )
                continue
            key = (event.position.shard_id, event.table)
            buffer = buffers.get(key)
            if buffer is None:
                buffer = buffers[key] = ShardBuffer(event.table, self._layout, self.settings)
            buffer.accept(event, line, now)
        return failures or NO_FAILURES

    def wants_flush(self, now_monotonic: float) -> bool:
        """True when any buffer is full (bytes or records) or its oldest record has waited
        `max_age_s`."""
        return any(buffer.due(now_monotonic) for buffer in self._buffers.values())

    async def flush(self) -> None:
        """Writes every buffered record; returns when all are durable. Seals the pending
        objects first (records written meanwhile start new ones); buffers are written
        concurrently, each one's objects in order. An object not written in `put_attempts`
        tries stays buffered, sealed, with the objects after it, for the next flush to write
        under the same keys; then raises SinkError (chained to the first failure)."""
        if self._closed:
            raise RuntimeError("the audit sink is closed")
        async with self._flush_lock:
            work = [
                (buffer, segments)
                for buffer in self._buffers.values()
                if (segments := buffer.seal())
            ]
            if not work:
                return
            store = await self._open_store()
            limit = asyncio.Semaphore(self.settings.flush_concurrency)

            async def write_buffer(buffer: ShardBuffer, segments: list[Segment]) -> None:
                async with limit:
                    for segment in segments:
                        await self._write_segment(store, segment)
                        buffer.written(segment)

            results = await asyncio.gather(
                *(write_buffer(buffer, segments) for buffer, segments in work),
                return_exceptions=True,
            )
        failures = [result for result in results if isinstance(result, BaseException)]
        for failure in failures:
            if not isinstance(failure, Exception):
                raise failure  # cancellation and the like pass through untouched
        if failures:
            first = failures[0]
            retryable = not isinstance(first, SinkError) or first.retryable
            raise SinkError(
                f"audit: {len(failures)} of {len(work)} shard buffers not written: {first}",
                retryable=retryable,
            ) from first

    async def _write_segment(self, store: ObjectStore, segment: Segment) -> None:
        settings = self.settings
        body = segment.body
        if body is None:
            # The lines are released only once the body exists: a flush cancelled while
            # compressing must leave the segment as it was.
            body = await gzip_body(segment.text(), settings.compress_level)
            segment.keep_body(body)
        request: dict[str, Any] = {
            "Bucket": settings.bucket,
            "Key": segment.key,
            "Body": body,
            "ContentType": CONTENT_TYPE,
            "ContentEncoding": CONTENT_ENCODING,
            "Metadata": {"records": str(segment.records)},
        }
        if settings.expected_bucket_owner:
            request["ExpectedBucketOwner"] = settings.expected_bucket_owner
        if settings.sse != "none":
            request["ServerSideEncryption"] = settings.sse
            if settings.kms_key_id:  # only with aws:kms (the section's rule)
                request["SSEKMSKeyId"] = settings.kms_key_id
        await put_with_retries(
            store,
            request,
            attempts=settings.put_attempts,
            backoff=Backoff(base_s=settings.retry_base_s, cap_s=settings.retry_cap_s),
        )

    async def _open_store(self) -> ObjectStore:
        if self._store is not None:
            return self._store
        if self._store_factory is None:  # the constructor makes this impossible
            raise RuntimeError("the audit sink has neither a store nor a factory")
        store: ObjectStore = await self._exit_stack.enter_async_context(self._store_factory())
        fence_requests(store)
        self._store = store
        return store

    async def aclose(self) -> None:
        """Closes the client this sink opened (a client given to it stays open). Does not
        flush: records still buffered are not durable, the checkpoint is behind them, and
        whoever reads the shard next reads them again."""
        self._closed = True
        await self._exit_stack.aclose()

    async def __aenter__(self) -> AuditSink:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
