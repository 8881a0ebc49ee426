"""What the search sinks write: one document per item key, its id, body and version.

Document id (`document_id`, unique per table: one index per table): the key attribute values
in attribute-name order (the record carries the key's values, not the key schema), as text
(S as is, N in canonical form so equal numbers give one id, B unpadded base64url),
percent-escaped but for `A-Z a-z 0-9 - _ .` (an empty value is "%"), joined with "~". An id
over `MAX_READABLE_ID` characters (OpenSearch caps ids at 512 bytes; DynamoDB keys reach 3 KB)
becomes a prefix, "~~" and the SHA-256 of the full id; a readable id never holds "~~".

Document body (`document_source`), the change as JSON with exact numbers:

    {"keys": {...}, "item": {... NewImage ...}, "deleted": false,
     "change": {"event_id", "event_name", "table", "created_at", "version", "ttl_delete"}}

A REMOVE writes a tombstone: the same without "item", and `"deleted": true`. Attributes live
under "item" so that no attribute name can clash with the sink's fields.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from consumer.pipeline.newest import newest_per_key
from consumer.pipeline.sink import SinkError
from consumer.records import ChangeEvent, DecodeError, EventName, Image, iso_utc
from consumer.records.number import DYNAMODB_NUMBERS
from consumer.records.ordering import Transition

KEYS_FIELD = "keys"
ITEM_FIELD = "item"
DELETED_FIELD = "deleted"
CHANGE_FIELD = "change"

MAX_READABLE_ID = 256
_HASHED_PREFIX = 180
_HASHED_MARKER = "~~"


def document_id(keys: Image) -> str:
    """The document id of the item with these key attributes (see the module docstring).

    Raises DecodeError if the keys are invalid, SinkError (not retryable) if a key attribute
    is not a string, number or binary value.
    """
    values = keys.python
    readable = "~".join(_escape(_key_text(name, values[name])) for name in sorted(values))
    if len(readable) <= MAX_READABLE_ID:
        return readable
    digest = hashlib.sha256(readable.encode("ascii")).hexdigest()
    return f"{readable[:_HASHED_PREFIX]}{_HASHED_MARKER}{digest}"


def _key_text(name: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return canonical_number(value)
    if isinstance(value, bytes):
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")
    raise SinkError(
        f"key attribute {name!r} is a {type(value).__name__}, not a string, number or binary",
        retryable=False,
    )


def canonical_number(value: Decimal) -> str:
    """One text per numeric value: integers without exponent up to 40 digits, else str() of
    the normalized decimal."""
    if value.is_zero():
        return "0"
    normal = value.normalize(DYNAMODB_NUMBERS)
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0 and normal.adjusted() < 40:
        return format(normal, "f")
    return str(normal)


def _escape(text: str) -> str:
    if not text:
        return "%"
    # quote() leaves "~" alone (it is unreserved in URLs); it is our separator, so escape it.
    return quote(text, safe="").replace("~", "%7E")


def document_source(event: ChangeEvent) -> dict[str, Any]:
    """The document for this change: the item (INSERT, MODIFY) or a tombstone (REMOVE).

    Raises DecodeError for an invalid image, SinkError (not retryable) for an INSERT or MODIFY
    without a NewImage (a stream view type without new images cannot feed search).
    """
    change = {
        "event_id": event.event_id,
        "event_name": event.event_name.value,
        "table": event.table,
        "created_at": iso_utc(event.created_at_us),
        "version": event.version,
        "ttl_delete": event.ttl_delete,
    }
    if event.event_name is EventName.REMOVE:
        return {KEYS_FIELD: event.keys.json, DELETED_FIELD: True, CHANGE_FIELD: change}
    new_image = event.new_image
    if new_image is None:
        raise SinkError(
            f"{event.event_name.value} without a NewImage: search needs new images "
            "(stream view type NEW_IMAGE or NEW_AND_OLD_IMAGES)",
            retryable=False,
        )
    return {
        KEYS_FIELD: event.keys.json,
        ITEM_FIELD: new_image.json,
        DELETED_FIELD: False,
        CHANGE_FIELD: change,
    }


@dataclass(frozen=True, slots=True)
class DocumentWrite:
    """The newest change of one document in a batch, ready to write. `index` is the change's
    index in the batch; the batch's older changes to the same document are moot (superseded),
    so they are neither written nor reported. `transition` and `follows_states` decide a tie
    with the stored document's version (`consumer.records.ordering`)."""

    index: int
    doc_id: str
    event: ChangeEvent
    source: dict[str, Any]
    transition: Transition
    follows_states: frozenset[str]

    @property
    def version(self) -> int:
        return self.event.version

    @property
    def deleted(self) -> bool:
        return self.event.event_name is EventName.REMOVE


@dataclass(frozen=True, slots=True)
class WritePlan:
    """The writes of one batch, in batch order, and the changes that cannot be written."""

    writes: list[DocumentWrite]
    failures: dict[int, SinkError]


def plan_writes(events: Sequence[ChangeEvent], sink: str = "search") -> WritePlan:
    """The newest change per document of `events`, with its document built.

    Newest is the highest version; changes with equal versions are ordered by the item states
    they connect (`consumer.pipeline.newest`). Changes whose key or document is invalid are
    failures (not retryable), by index.
    """
    failures: dict[int, SinkError] = {}
    valid: list[int] = []
    doc_ids: dict[int, str] = {}
    for index, event in enumerate(events):
        try:
            doc_ids[id(event)] = document_id(event.keys)
        except (DecodeError, SinkError) as error:
            failures[index] = _as_sink_error(error)
            continue
        valid.append(index)
    chosen = newest_per_key([events[index] for index in valid], lambda e: doc_ids[id(e)], sink)
    writes: list[DocumentWrite] = []
    for doc_id, newest in sorted(chosen.items(), key=lambda entry: entry[1].index):
        index = valid[newest.index]
        event = events[index]
        try:
            source = document_source(event)
        except (DecodeError, SinkError) as error:
            failures[index] = _as_sink_error(error)
            continue
        writes.append(
            DocumentWrite(index, doc_id, event, source, newest.transition, newest.follows_states)
        )
    return WritePlan(writes, failures)


def _as_sink_error(error: DecodeError | SinkError) -> SinkError:
    if isinstance(error, SinkError):
        return error
    return SinkError(f"invalid change: {error.reason}", retryable=False)
