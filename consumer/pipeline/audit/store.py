"""Writing one audit object: gzip, then PutObject with retries for transient failures."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeAlias

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.backoff import Backoff
from consumer.aws.errors import TRANSIENT_NETWORK_ERRORS, error_code, is_retryable
from consumer.aws.fencing import check_fence
from consumer.pipeline.sink import SinkError

log = structlog.get_logger(__name__)

CONTENT_TYPE = "application/x-ndjson"
CONTENT_ENCODING = "gzip"
# S3's own codes for "try again" (besides every 5xx): 503 SlowDown, 400 RequestTimeout (the
# body arrived too slowly), 409 OperationAborted (a conflicting operation on the key).
_S3_RETRY_CODES = frozenset({"SlowDown", "RequestTimeout", "OperationAborted", "Throttling"})
# Bodies above this are compressed on a worker thread (zlib releases the GIL), so a flush of
# megabytes does not stall the event loop that reads every other shard.
_INLINE_GZIP_BYTES = 256 * 1024


class ObjectStore(Protocol):
    """The one S3 call the sink makes; an aiobotocore S3 client is an ObjectStore."""

    async def put_object(self, **kwargs: Any) -> Any: ...


# Opens an S3 client for the sink's lifetime: `lambda: endpoints.aio_client("s3")`.
StoreFactory: TypeAlias = Callable[[], AbstractAsyncContextManager[Any]]


async def gzip_body(text: bytes, level: int) -> bytes:
    """`text` as one gzip member. mtime=0 makes the body a function of the text alone, so a
    rewrite of the same records is byte-identical (same ETag)."""
    if len(text) <= _INLINE_GZIP_BYTES:
        return gzip.compress(text, level, mtime=0)
    return await asyncio.to_thread(gzip.compress, text, level, mtime=0)


async def put_with_retries(
    store: ObjectStore,
    request: Mapping[str, Any],
    *,
    attempts: int,
    backoff: Backoff,
) -> None:
    """PutObject, retried with backoff on transient failures, at most `attempts` tries.

    Raises SinkError (`retryable` says whether the cause was transient) chained to the last
    error. The message names the object, never its contents.
    """
    where = f"s3://{request['Bucket']}/{request['Key']}"
    for attempt in range(1, attempts + 1):
        try:
            check_fence()  # after a stall or a backoff the lease may be gone: write nothing
            await store.put_object(**request)
            return
        except (ClientError, BotoCoreError, *TRANSIENT_NETWORK_ERRORS) as error:
            # Throttling, a 5xx, a timeout or a broken connection: trying again may succeed.
            if isinstance(error, ClientError):
                cause = error_code(error)
                retryable = cause in _S3_RETRY_CODES or is_retryable(error)
            else:
                cause = type(error).__name__
                retryable = isinstance(error, TRANSIENT_NETWORK_ERRORS)
            if not retryable or attempt == attempts:
                raise SinkError(
                    f"audit: PutObject {where} failed ({cause}) after {attempt} attempt(s)",
                    retryable=retryable,
                ) from error
            log.warning("audit.put_retry", key=request["Key"], error=cause, attempt=attempt)
        await backoff.sleep()
