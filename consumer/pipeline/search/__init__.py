"""The search pipeline: DynamoDB items as search documents, one per item key, converging to
the table despite duplicates and disorder.

- `OpenSearchSink`: OpenSearch through `_bulk`, external versioning from the change time,
  tombstones for deletes, per-item failure handling, SigV4 or basic auth, TLS verified; an
  index with a fixed mapping every item fits (`mapping.py`); refusals sorted into record and
  destination faults (`faults.py`).
- `LocalSearchIndex`: the default when no endpoint is configured, an embedded SQLite FTS5
  index with the same documents and versioning, queried by `consumer search QUERY`.
- `search_sink(opensearch, local)`: the one to use for the settings given.
"""

from consumer.pipeline.search.document import (
    CHANGE_FIELD,
    DELETED_FIELD,
    ITEM_FIELD,
    KEYS_FIELD,
    document_id,
    document_source,
)
from consumer.pipeline.search.local_index import LocalSearchIndex
from consumer.pipeline.search.local_store import (
    IndexMissing,
    LocalIndexStore,
    SearchHit,
    SearchQueryError,
    StoredDocument,
)
from consumer.pipeline.search.opensearch_sink import OpenSearchSink
from consumer.pipeline.search.queries import live_only, live_search_body
from consumer.pipeline.search.settings import (
    DEFAULT_INDEX,
    LocalIndexSettings,
    OpenSearchSettings,
    local_index_file,
)
from consumer.pipeline.sink import Sink


def search_sink(
    opensearch: OpenSearchSettings | None, local: LocalIndexSettings | None = None
) -> Sink:
    """The search sink: OpenSearch when an endpoint is configured, else the local index."""
    if opensearch is not None:
        return OpenSearchSink(opensearch)
    return LocalSearchIndex(local)


__all__ = [
    "CHANGE_FIELD",
    "DEFAULT_INDEX",
    "DELETED_FIELD",
    "ITEM_FIELD",
    "KEYS_FIELD",
    "IndexMissing",
    "LocalIndexSettings",
    "LocalIndexStore",
    "LocalSearchIndex",
    "OpenSearchSettings",
    "OpenSearchSink",
    "SearchHit",
    "SearchQueryError",
    "StoredDocument",
    "document_id",
    "document_source",
    "live_only",
    "live_search_body",
    "local_index_file",
    "search_sink",
]
