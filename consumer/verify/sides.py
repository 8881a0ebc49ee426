"""What verify needs of a sink (one per pipeline): its copy of items by key, and its live keys.

Rules every side keeps:
- `fetch` reads the sink's current copy (strongly consistent for the replica, real-time GET
  semantics for the index) and leaves out tombstones: a tombstone is an absent item.
- `same` compares a live copy with the source item (see `consumer.verify.compare`).
- `live_keys` yields the keys of live items in pages; it may miss an item written during the
  pass (found by the next run) but never yields a tombstone as live.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from consumer.verify.keys import KeyRef

WireItem = dict[str, Any]


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
