"""The `_bulk` protocol of the OpenSearch sink: NDJSON request bodies and per-item outcomes.

Every write is an `index` action with the change's version and `version_type` "external"
(applied only over an older version, else a 409 conflict: not an error; ties go to `ties.py`,
since "external_gte" at once would let a redelivered older change of a tie win). A REMOVE
indexes a tombstone: OpenSearch's deletes forget their version after `index.gc_deletes`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from consumer.pipeline.search.document import DocumentWrite
from consumer.pipeline.search.faults import DestinationRefused, is_destination_fault, is_transient
from consumer.pipeline.search.mapping import indexed_document
from consumer.pipeline.sink import SinkError
from consumer.records import to_json_bytes

VERSION_TYPE = "external"
TIE_VERSION_TYPE = "external_gte"  # a tie decided for the incoming change (ties.py)
_CONFLICT = "version_conflict_engine_exception"
_REASON_LIMIT = 300

# One write's NDJSON: its action line and its source line, each ending in "\n".
EncodedWrite = tuple[DocumentWrite, bytes]


def encode_write(write: DocumentWrite, version_type: str = VERSION_TYPE) -> bytes:
    """The action and source lines of one write (the document with its searchable fields,
    `mapping.py`). Numbers keep DynamoDB's exact digits."""
    action = {
        "index": {"_id": write.doc_id, "version": write.version, "version_type": version_type}
    }
    return to_json_bytes(action) + b"\n" + to_json_bytes(indexed_document(write)) + b"\n"


def bulk_chunks(
    writes: Sequence[DocumentWrite], max_bytes: int, version_type: str = VERSION_TYPE
) -> Iterator[list[EncodedWrite]]:
    """`writes` encoded and grouped, in order, into request bodies of at most `max_bytes`
    (a single larger write goes alone)."""
    chunk: list[EncodedWrite] = []
    size = 0
    for write in writes:
        lines = encode_write(write, version_type)
        if chunk and size + len(lines) > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append((write, lines))
        size += len(lines)
    if chunk:
        yield chunk


def bulk_body(chunk: Sequence[EncodedWrite]) -> bytes:
    return b"".join(lines for _, lines in chunk)


def item_outcomes(
    response: Mapping[str, Any], chunk: Sequence[EncodedWrite]
) -> tuple[list[SinkError | None], list[DocumentWrite]]:
    """Per write of `chunk`, in order: None if applied (or already superseded), else the error;
    and the writes OpenSearch answered with a version conflict (409: newer state or a tie).

    Raises SinkError (retryable) if the response does not list one result per action.
    """
    items = response.get("items")
    if not isinstance(items, list) or len(items) != len(chunk):
        count = len(items) if isinstance(items, list) else "no"
        raise SinkError(
            f"bulk response lists {count} items for {len(chunk)} actions", retryable=True
        )
    pairs = list(zip(items, chunk, strict=True))
    outcomes = [item_error(item, write.doc_id) for item, (write, _) in pairs]
    return outcomes, [write for item, (write, _) in pairs if _conflict(item)]


def _conflict(item: object) -> bool:
    result = next(iter(item.values()), None) if isinstance(item, dict) else None
    return (
        isinstance(result, dict)
        and result.get("status") == 409
        and _describe(result.get("error"))[0] == _CONFLICT
    )


def item_error(item: object, doc_id: str) -> SinkError | None:
    """The error of one bulk response item, None for success.

    2xx is success, and so is 409 version_conflict_engine_exception (newer state is there).
    A destination fault (401/403, a write block, a missing index: `faults.py`) is a
    DestinationRefused, retryable; 429 and 5xx are retryable; any other status means the
    document itself was refused (mapping, size, invalid id) and is not.
    """
    if not isinstance(item, dict) or len(item) != 1:
        return SinkError(f"document {doc_id}: malformed bulk response item", retryable=True)
    (result,) = item.values()
    status = result.get("status") if isinstance(result, dict) else None
    if not isinstance(status, int):
        return SinkError(f"document {doc_id}: bulk response item without status", retryable=True)
    error = result.get("error")
    if error is None and 200 <= status < 300:
        return None
    kind, reason = _describe(error)
    if status == 409 and kind == _CONFLICT:
        return None
    message = f"document {doc_id}: {status} {kind}: {reason}"
    if is_destination_fault(status, kind):
        return DestinationRefused(message, kind=kind, status=status)
    return SinkError(message, retryable=is_transient(status))


def _describe(error: object) -> tuple[str, str]:
    if isinstance(error, dict):
        kind = str(error.get("type", "error"))
        reason = str(error.get("reason", ""))
    else:
        kind, reason = "error", str(error)
    # Reasons may quote field values; keep them short (they reach the dead-letter queue).
    if len(reason) > _REASON_LIMIT:
        reason = reason[: _REASON_LIMIT - 3] + "..."
    return kind, reason
