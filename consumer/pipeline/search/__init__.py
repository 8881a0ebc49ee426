"""The search pipeline: DynamoDB items as search documents, one per item key, converging to
the table despite duplicates and disorder, in OpenSearch (`opensearch_sink.py`) or, when no
endpoint is configured, an embedded SQLite FTS5 index (`local_index.py`)."""

from consumer.pipeline.search.local_index import LocalSearchIndex
from consumer.pipeline.search.opensearch_sink import OpenSearchSink
from consumer.pipeline.search.settings import LocalIndexSettings, OpenSearchSettings
from consumer.pipeline.sink import Sink


def search_sink(
    opensearch: OpenSearchSettings | None, local: LocalIndexSettings | None = None
) -> Sink:
    """The search sink: OpenSearch when an endpoint is configured, else the local index."""
    if opensearch is not None:
        return OpenSearchSink(opensearch)
    return LocalSearchIndex(local)
