"""The search index's mapping: fixed, so that every DynamoDB item can be indexed.

OpenSearch's dynamic mapping cannot hold DynamoDB items (README: Search index, which lists the
fields). So `item` and `keys` are stored, not indexed; `search.keys`, `search.values`
(`path=value` terms) and `search.text` are what is searched; the root is `dynamic: strict`
with no date detection, so no item adds a field and there is nothing to conflict with.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from consumer.pipeline.search.document import (
    CHANGE_FIELD,
    DELETED_FIELD,
    ITEM_FIELD,
    KEYS_FIELD,
    DocumentWrite,
    canonical_number,
)
from consumer.pipeline.search.ties import TIE_MAPPINGS

SEARCH_FIELD = "search"
# Characters: a keyword term is at most 32,766 UTF-8 bytes, 4 bytes per character at most.
IGNORE_ABOVE = 8191

_KEYWORD: dict[str, Any] = {"type": "keyword", "ignore_above": IGNORE_ABOVE}
_STORED_ONLY: dict[str, Any] = {"type": "object", "enabled": False}

INDEX_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "date_detection": False,
    "properties": {
        KEYS_FIELD: _STORED_ONLY,
        ITEM_FIELD: _STORED_ONLY,
        DELETED_FIELD: {"type": "boolean"},
        CHANGE_FIELD: {
            "properties": {
                "event_id": {"type": "keyword"},
                "event_name": {"type": "keyword"},
                "table": {"type": "keyword"},
                "created_at": {"type": "date"},
                "version": {"type": "long"},
                "ttl_delete": {"type": "boolean"},
                **TIE_MAPPINGS,  # how a tie in version is decided (ties.py)
            }
        },
        SEARCH_FIELD: {
            "properties": {
                "keys": _KEYWORD,
                "values": _KEYWORD,
                "text": {"type": "text"},
            }
        },
    },
}

# What `PUT /<index>` sends (also infra/opensearch/index.json, for creating it by hand).
INDEX_BODY: dict[str, Any] = {"mappings": INDEX_MAPPINGS}


def indexed_document(write: DocumentWrite) -> dict[str, Any]:
    """The document as sent to OpenSearch: the stored source plus its searchable fields."""
    keys = write.event.keys.python
    search: dict[str, Any] = {"keys": [f"{name}={_text(keys[name])}" for name in sorted(keys)]}
    if not write.deleted and write.event.new_image is not None:
        search["values"], search["text"] = item_terms(write.event.new_image.python)
    return {**write.source, SEARCH_FIELD: search}


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return number_text(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def number_text(value: Decimal) -> str:
    """`canonical_number(value)`, fast for the usual numbers: str() of a Decimal is already
    canonical when it has no exponent, no trailing fractional zero and is not -0."""
    text = str(value)
    if "E" not in text and text != "-0" and not ("." in text and text.endswith("0")):
        return text
    return canonical_number(value)


def item_terms(item: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """One pass over an item (python view): its `path=value` terms (in order, without
    repeats) and its non-empty strings. Exact type checks and local names: this runs for
    every value of every document."""
    values: dict[str, None] = {}
    texts: list[str] = []
    containers = (list, set, frozenset)

    def visit(value: object, path: str) -> None:
        kind = type(value)
        if kind is str:
            values[f"{path}={value}"] = None
            if value:
                texts.append(value)  # type: ignore[arg-type]  # `kind is str`: mypy does not narrow through a stored type(); type() over isinstance on this per-value path
        elif kind is dict:
            prefix = f"{path}." if path else ""
            for name, member in value.items():  # type: ignore[attr-defined]  # kind is dict (see above)
                visit(member, prefix + name)
        elif kind in containers:
            for member in value:  # type: ignore[attr-defined]  # kind is a container (see above)
                visit(member, path)
        else:
            values[f"{path}={_text(value)}"] = None

    for name, member in item.items():
        visit(member, name)
    return list(values), texts


# --- checking an existing index -------------------------------------------------------------


def mapping_problems(actual: Mapping[str, Any]) -> list[str]:
    """How an index's mapping (as GET /<index>/_mapping shows it) differs from what the sink
    needs: every field of INDEX_MAPPINGS with the same type, and the stored-only objects not
    indexed. Extra fields are fine. Empty when compatible."""
    return list(_differences(INDEX_MAPPINGS.get("properties", {}), _properties(actual), ""))


def _properties(node: Mapping[str, Any]) -> Mapping[str, Any]:
    properties = node.get("properties", {})
    return properties if isinstance(properties, Mapping) else {}


def _type(node: Mapping[str, Any]) -> str:
    kind = node.get("type")
    return str(kind) if kind is not None else "object"


def _differences(
    wanted: Mapping[str, Any], actual: Mapping[str, Any], prefix: str
) -> Iterator[str]:
    for name, want in wanted.items():
        path = f"{prefix}{name}"
        have = actual.get(name)
        if not isinstance(have, Mapping):
            yield f"{path} is not mapped"
            continue
        if _type(have) != _type(want):
            yield f"{path} is {_type(have)}, needs {_type(want)}"
            continue
        if want.get("enabled") is False and str(have.get("enabled", True)).lower() != "false":
            yield f"{path} is an indexed object (dynamic fields), needs enabled: false"
            continue
        if _type(want) == "object":
            yield from _differences(_properties(want), _properties(have), f"{path}.")
