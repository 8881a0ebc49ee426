"""What verify needs of a sink (one per pipeline): its copy of items by key, and its live keys.

Rules every side keeps:
- `fetch` reads the sink's current copy (strongly consistent for the replica, real-time GET
  semantics for the index) and leaves out tombstones: a tombstone is an absent item.
- `same` compares a live copy with the source item (see `consumer.verify.compare`).
- `live_keys` yields the keys of live items in pages; it may miss an item written during the
  pass (found by the next run) but never yields a tombstone as live.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Protocol

from consumer.pipeline.search.document import ITEM_FIELD
from consumer.verify.compare import same_document
from consumer.verify.keys import KeyRef, WireItem, key_from_json, key_ref


class SinkSide(Protocol):
    pipeline: str

    async def check(self) -> None:
        """Raises VerifyError (one line) if the sink cannot be verified as configured."""

    async def fetch(self, refs: Sequence[KeyRef]) -> dict[str, Any]:
        """The live copies among `refs`, by document id (absent and tombstones left out)."""

    def same(self, source: WireItem, copy: Any) -> bool:
        """Whether `copy` (from `fetch`) holds the source item."""

    def live_keys(self) -> AsyncIterator[list[KeyRef]]:
        """Pages of the keys of live items in the sink."""

    async def aclose(self) -> None: ...


class IndexSide:
    """What the two search sides share: a document holds the item in its `item` field, and its
    key in `keys` (JSON), read back with the table's key types."""

    pipeline = "search"

    def __init__(self, key_names: tuple[str, ...], key_types: Mapping[str, str]) -> None:
        self._key_names = key_names
        self._key_types = dict(key_types)
        self.foreign = 0  # live documents whose keys are not this table's

    def same(self, source: WireItem, copy: Any) -> bool:
        return same_document(source, copy.get(ITEM_FIELD))

    def _refs(self, documents_keys: Iterable[Mapping[str, Any]]) -> list[KeyRef]:
        """The documents' keys as references; another table's keys are counted in `foreign`."""
        refs = []
        for keys in documents_keys:
            key = key_from_json(keys, self._key_types)
            if key is None:
                self.foreign += 1
                continue
            refs.append(key_ref(key, self._key_names))
        return refs
