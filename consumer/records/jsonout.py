"""JSON output for decoded changes, with numbers written exactly as DynamoDB sent them."""

from __future__ import annotations

import binascii
from decimal import Decimal
from typing import Any

import orjson

from consumer.records.event import ChangeEvent
from consumer.records.number import JsonNumber
from consumer.records.timestamps import datetime_from_us


def _default(value: object) -> object:
    # orjson cannot write Decimals; a Fragment is inserted verbatim. A JsonNumber's literal is
    # valid JSON by construction, and str() of any finite Decimal is valid JSON number syntax.
    if isinstance(value, JsonNumber):
        return orjson.Fragment(value.literal)
    if isinstance(value, Decimal):
        if value.is_finite():
            return orjson.Fragment(str(value))
        raise TypeError(f"{value} has no JSON form")
    if isinstance(value, bytes | bytearray | memoryview):
        return binascii.b2a_base64(value, newline=False).decode("ascii")
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json_bytes(value: Any) -> bytes:
    """Compact JSON for a JSON view (or any value built from JSON and Python views).

    Numbers (JsonNumber, Decimal) are written with their exact digits, never through float;
    bytes as base64; sets as lists. Raises TypeError for anything else without a JSON form.
    """
    return orjson.dumps(value, default=_default)


def change_document(event: ChangeEvent) -> dict[str, Any]:
    """A change as one JSON-native document: ids, keys and images (JSON views, null when
    absent), creation time in ISO 8601 UTC with microseconds, and the TTL flag.

    Raises DecodeError if an image is invalid.
    """
    new_image = event.new_image
    old_image = event.old_image
    return {
        "event_id": event.event_id,
        "event_name": event.event_name.value,
        "table": event.table,
        "keys": event.keys.json,
        "new_image": None if new_image is None else new_image.json,
        "old_image": None if old_image is None else old_image.json,
        "created_at": iso_utc(event.created_at_us),
        "ttl_delete": event.ttl_delete,
    }


def iso_utc(us: int) -> str:
    """Epoch microseconds as ISO 8601 UTC with microseconds: 2024-07-03T22:41:26.486729Z."""
    return datetime_from_us(us).isoformat(timespec="microseconds").replace("+00:00", "Z")
