"""A strict protocol double of OpenSearch for the search sink's tests (see server.py)."""

from tests.opensearch_double.engine import ApiError, Engine
from tests.opensearch_double.server import OpenSearchDouble, RecordedRequest, SigV4Check

__all__ = ["ApiError", "Engine", "OpenSearchDouble", "RecordedRequest", "SigV4Check"]
