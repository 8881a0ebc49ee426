"""Which OpenSearch refusals are the record's fault (parked) and which the destination's
(README has the table). A destination fault would fail every record alike, and parking them
would drain the stream into the dead-letter queue, so it is retryable: the shard holds.
"""

from __future__ import annotations

from consumer.pipeline.sink import SinkError

# Bulk item errors that are the destination's whatever their status.
DESTINATION_ERROR_TYPES = frozenset(
    {"cluster_block_exception", "index_not_found_exception", "security_exception"}
)
ACCESS_DENIED_STATUSES = frozenset({401, 403})


class DestinationRefused(SinkError):
    """OpenSearch refused writes for a reason that is not the record's (see the module
    docstring). Always retryable; `kind` is OpenSearch's error type, `status` the HTTP one."""

    def __init__(self, message: str, *, kind: str, status: int | None) -> None:
        super().__init__(message, retryable=True)
        self.kind = kind
        self.status = status


def is_destination_fault(status: int, kind: str) -> bool:
    """True if a bulk item refused with `status` and error type `kind` is the destination's
    fault (not the record's)."""
    return status in ACCESS_DENIED_STATUSES or kind in DESTINATION_ERROR_TYPES


def is_transient(status: int) -> bool:
    """Throttled (429) or failed inside OpenSearch (5xx): retried, never parked."""
    return status == 429 or status >= 500
