"""An item's key as verify carries it: the search document id (one canonical text per key, so
the same item has the same id on every side), the typed key for DynamoDB calls, and the text
shown to operators (key values only, control characters escaped)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from consumer.cli.terminal import printable
from consumer.pipeline.search.document import canonical_number, document_id
from consumer.records import Image, RecordPosition

WireItem = dict[str, Any]
_POSITION = RecordPosition(stream="verify", shard_id="", sequence_number="0")


@dataclass(frozen=True)
class KeyRef:
    doc_id: str
    key: WireItem  # typed key attributes, binaries as bytes (what the clients take)
    text: str


def key_ref(item: Mapping[str, Any], key_names: Sequence[str]) -> KeyRef:
    """The key of `item` (typed JSON; only its key attributes are read)."""
    key = {name: _client_value(item[name]) for name in key_names}
    image = Image(key, _POSITION, "Keys")
    return KeyRef(document_id(image), key, key_text(key, key_names))


def key_text(key: Mapping[str, Any], key_names: Sequence[str]) -> str:
    parts = []
    for name in key_names:
        kind, value = next(iter(key[name].items()))
        if kind == "B":
            value = base64.b64encode(value).decode() if isinstance(value, bytes) else value
        elif kind == "N":
            value = canonical_number(Decimal(value))
        parts.append(f"{name}={value}")
    return printable(", ".join(parts))


def key_from_json(keys: Mapping[str, Any], key_types: Mapping[str, str]) -> WireItem | None:
    """A search document's `keys` (JSON view) as the typed key of the table, given the table's
    key attribute types; None when they do not fit (another table's document)."""
    if set(keys) != set(key_types):
        return None
    key: WireItem = {}
    for name, kind in key_types.items():
        value = keys[name]
        if kind == "S" and isinstance(value, str):
            key[name] = {"S": value}
        elif (
            kind == "N" and isinstance(value, int | Decimal | float) and not isinstance(value, bool)
        ):
            key[name] = {"N": canonical_number(Decimal(str(value)))}
        elif kind == "B" and isinstance(value, str):
            key[name] = {"B": base64.b64decode(value)}
        else:
            return None
    return key


def _client_value(value: Mapping[str, Any]) -> dict[str, Any]:
    kind, inner = next(iter(value.items()))
    if kind == "B" and isinstance(inner, str):
        return {"B": base64.b64decode(inner)}
    return {kind: inner}


def in_sample(doc_id: str, fraction: float) -> bool:
    """Whether the item is in a `fraction` sample: a hash of its key, so the table's side and
    the sinks' sides pick the same items in every run."""
    if fraction >= 1.0:
        return True
    digest = hashlib.blake2b(doc_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2**64
