"""Checks shared by the decoders for the fields every DynamoDB change record carries."""

from __future__ import annotations

from typing import Any

from consumer.records.errors import InvalidRecord
from consumer.records.event import EventName
from consumer.records.image import Image
from consumer.records.position import RecordPosition

# eventName text -> EventName; eventSource of every DynamoDB change record.
EVENT_NAMES: dict[str, EventName] = {name.value: name for name in EventName}
DYNAMODB_SOURCE = "aws:dynamodb"
_DYNAMODB_PRINCIPAL = "dynamodb.amazonaws.com"


def record_object(record: object) -> dict[str, Any]:
    if type(record) is not dict:
        raise InvalidRecord(f"not a DynamoDB change record: JSON {_kind(record)}, not an object")
    return record


def body_object(record: dict[str, Any]) -> dict[str, Any]:
    """The record's `dynamodb` object."""
    body = record.get("dynamodb")
    if type(body) is not dict:
        raise InvalidRecord(f"not a DynamoDB change record: dynamodb is {_missing_or(body)}")
    return body


def text(container: dict[str, Any], key: str) -> str:
    """A required string field."""
    value = container.get(key)
    if type(value) is not str:
        raise InvalidRecord(f"{key} is {_missing_or(value)}, not a string")
    return value


def event_name(record: dict[str, Any]) -> EventName:
    value = record.get("eventName")
    name = EVENT_NAMES.get(value) if type(value) is str else None
    if name is None:
        if value is None:
            raise InvalidRecord("eventName is missing")
        raise InvalidRecord(f"eventName {value!r} is not INSERT, MODIFY or REMOVE")
    return name


def check_source(record: dict[str, Any]) -> None:
    """A record that names its source must name DynamoDB."""
    source = record.get("eventSource", DYNAMODB_SOURCE)
    if source != DYNAMODB_SOURCE:
        raise InvalidRecord(f"eventSource {source!r} is not {DYNAMODB_SOURCE!r}")


def is_ttl_delete(name: EventName, identity: object) -> bool:
    """A REMOVE by DynamoDB's TTL process: userIdentity is the DynamoDB service principal.

    Kinesis destination records and Lambda events spell the keys `type`/`principalId`, the
    DynamoDB Streams API `Type`/`PrincipalId`.
    """
    if identity is None:
        return False
    if type(identity) is not dict:
        raise InvalidRecord(f"userIdentity is {_a(_kind(identity))}, not an object")
    if name is not EventName.REMOVE:
        return False
    kind = identity.get("type", identity.get("Type"))
    principal = identity.get("principalId", identity.get("PrincipalId"))
    return kind == "Service" and principal == _DYNAMODB_PRINCIPAL


def keys_image(body: dict[str, Any], position: RecordPosition, raw: bytes) -> Image:
    keys = body.get("Keys")
    if type(keys) is not dict or not keys:
        raise InvalidRecord(f"dynamodb.Keys is {_missing_or(keys)}, not a non-empty object")
    check_key_types(keys)
    return Image(keys, position, "Keys", raw)


# The type tags a key attribute may have: "each primary key attribute must be defined as type
# string, number, or binary" (Supported data types and naming rules).
KEY_TAGS = frozenset(("S", "N", "B"))
_TAGS = frozenset(("S", "N", "B", "SS", "NS", "BS", "M", "L", "BOOL", "NULL"))


def check_key_types(keys: dict[str, Any]) -> None:
    """dynamodb.Keys (typed JSON) holds a primary key: one or two attributes (partition key,
    sort key), each of type S, N or B. Their values are checked with the image's views."""
    if len(keys) > 2:
        raise InvalidRecord(
            f"dynamodb.Keys has {len(keys)} attributes; a primary key has one or two"
            " (partition key, sort key)"
        )
    for name, value in keys.items():
        if type(value) is dict and len(value) == 1:
            tag = next(iter(value))
            if tag in KEY_TAGS:
                continue
            shown = tag if tag in _TAGS else "an unknown type tag"
            reason = f"a key attribute must be of type S, N or B, not {shown}"
        else:
            reason = "a key attribute must be one S, N or B value (an object with one type tag)"
        raise InvalidRecord(f"Keys[{name!r}]: {reason}")


def item_image(
    body: dict[str, Any], label: str, position: RecordPosition, raw: bytes
) -> Image | None:
    """dynamodb.NewImage or OldImage, None when absent (or null)."""
    image = body.get(label)
    if image is None:
        return None
    if type(image) is not dict:
        raise InvalidRecord(f"dynamodb.{label} is {_a(_kind(image))}, not an object")
    return Image(image, position, label, raw)


def size_bytes(body: dict[str, Any], default: int) -> int:
    """dynamodb.SizeBytes, or `default` when the record has none."""
    size = body.get("SizeBytes")
    if size is None:
        return default
    if type(size) is not int or size < 0:
        raise InvalidRecord(f"dynamodb.SizeBytes {size!r} is not a non-negative integer")
    return size


def _missing_or(value: object) -> str:
    return "missing" if value is None else _a(_kind(value))


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {
        dict: "object",
        list: "array",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
    }.get(type(value), type(value).__name__)
