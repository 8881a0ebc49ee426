"""Queries over a search index the sinks write: tombstones are documents, so leave them out."""

from __future__ import annotations

from typing import Any

from consumer.pipeline.search.document import DELETED_FIELD


def live_only(query: dict[str, Any] | None = None) -> dict[str, Any]:
    """`query` (default: every document) restricted to live items: no tombstones."""
    return {
        "bool": {
            "must": [query if query is not None else {"match_all": {}}],
            "must_not": [{"term": {DELETED_FIELD: True}}],
        }
    }
