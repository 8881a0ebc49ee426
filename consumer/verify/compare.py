"""Is a sink's copy the source item? Compared by value, not by bytes: numbers exactly (as
decimals: `1.0` equals `1`, never through float), set members in any order (DynamoDB sets
have no order), binaries whether bytes or base64 text. The sinks' own bookkeeping (the
replica's `_cdc_*` attributes, the index's change fields) is not part of the item.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from consumer.pipeline.replication import DELETED, RESERVED
from consumer.records import DYNAMODB_NUMBERS, JsonNumber

WireItem = dict[str, Any]


def canonical(value: Mapping[str, Any]) -> Any:
    """A typed attribute value (or, for a whole item, use `canonical_item`) as a hashable,
    order-free form."""
    kind, inner = next(iter(value.items()))
    form = _CANONICAL.get(kind)
    return (kind, repr(inner) if form is None else form(inner))


def canonical_item(item: Mapping[str, Any]) -> frozenset[tuple[str, Any]]:
    return frozenset((name, canonical(value)) for name, value in item.items())


def _decimal(text: Any) -> Decimal:
    # DynamoDB's 38 digits: the default context (28) would round two numbers into one.
    try:
        return Decimal(str(text)).normalize(DYNAMODB_NUMBERS)
    except InvalidOperation:
        return Decimal("NaN")


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return base64.b64decode(value)


_CANONICAL: dict[str, Callable[[Any], Any]] = {
    "S": lambda inner: inner,
    "N": _decimal,
    "B": _bytes,
    "SS": frozenset,
    "NS": lambda inner: frozenset(map(_decimal, inner)),
    "BS": lambda inner: frozenset(map(_bytes, inner)),
    "M": lambda inner: canonical_item(inner),
    "L": lambda inner: tuple(map(canonical, inner)),
    "BOOL": bool,
    "NULL": lambda inner: True,
}


def is_tombstone(replica_item: Mapping[str, Any]) -> bool:
    return bool(replica_item.get(DELETED, {}).get("BOOL"))


def expected_replica(
    source: Mapping[str, Any],
    key_names: tuple[str, ...],
    include: frozenset[str] | None,
    exclude: frozenset[str],
) -> WireItem:
    """The replica copy of `source` under the pipeline's include/exclude projection (key
    attributes are always kept), as `ReplicationSink` writes it."""
    return {
        name: value
        for name, value in source.items()
        if name in key_names or ((include is None or name in include) and name not in exclude)
    }


def same_replica(expected: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """Whether the replica row `stored`, without the replication sink's bookkeeping, holds
    `expected`."""
    held = {name: value for name, value in stored.items() if name not in RESERVED}
    return canonical_item(expected) == canonical_item(held)


def same_document(source: Mapping[str, Any], document_item: Any) -> bool:
    """Whether a search document's `item` (its JSON view, numbers as Decimal or JsonNumber)
    holds `source` (typed JSON). The source's types say how to read each JSON value."""
    if not isinstance(document_item, dict) or set(document_item) != set(source):
        return False
    return all(_same_json(source[name], document_item[name]) for name in source)


def _same_json(typed: Mapping[str, Any], value: Any) -> bool:
    kind, inner = next(iter(typed.items()))
    if kind in ("S", "N", "B"):
        return bool(_scalar(kind, value) == _CANONICAL[kind](inner))
    if kind in ("SS", "NS", "BS"):
        if not isinstance(value, list) or len(value) != len(inner):
            return False
        members = [_scalar(kind[0], member) for member in value]
        return None not in members and set(members) == _CANONICAL[kind](inner)
    if kind == "BOOL":
        return isinstance(value, bool) and value == bool(inner)
    if kind == "NULL":
        return value is None
    if kind == "L":
        return (
            isinstance(value, list)
            and len(value) == len(inner)
            and all(_same_json(t, v) for t, v in zip(inner, value, strict=True))
        )
    if kind == "M":
        return same_document(inner, value)
    return False


def _scalar(kind: str, value: Any) -> Any:
    """A JSON value read as a scalar of `kind` (S, N or B), canonical; None if it is not one."""
    if kind == "N":
        if not isinstance(value, int | float | Decimal | JsonNumber) or isinstance(value, bool):
            return None
        return _decimal(value.literal if isinstance(value, JsonNumber) else value)
    if not isinstance(value, str):
        return None
    if kind == "S":
        return value
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return None
