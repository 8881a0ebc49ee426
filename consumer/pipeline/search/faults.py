"""Which OpenSearch refusals are the record's fault and which are the destination's.

A record fault (the document itself is refused: a mapping error, an invalid id, a document
too large for any request) is parked: retrying it cannot help, and the shard moves on.

A destination fault says nothing about the record, and every other record would fail the same
way: parking them would drain the whole stream into the dead-letter queue while the index
stays stale. So the sink reports it as retryable and the shard holds (backoff, checkpoint
held) until the destination accepts writes again:

- 401 / 403 for the whole request: security_exception (fine-grained access control: unknown
  user, a role without the permission), IAM denials of Amazon OpenSearch Service, or a TLS
  failure (certificate not trusted). The operator must act: counted and alarmed.
- 403 (or 429) cluster_block_exception for a bulk item: the index is write-blocked
  (`index.blocks.write`, the flood-stage disk watermark, or Amazon OpenSearch Service under
  storage or JVM memory pressure); it lifts by itself once the pressure does.
- 404 index_not_found_exception for a bulk item: the index was deleted and cannot be
  auto-created.
- 429 and 5xx, timeouts, connection failures: throttling and outages, retried the same way.
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
