"""Classifying AWS errors: the one classification, shared with the lease table.

It is defined in `checkpoints.retry` (the lower package, whose lease table retries with it);
the service imports it from here.
"""

from checkpoints.retry import (
    SERVER_ERROR_CODES,
    THROTTLING_CODES,
    TRANSIENT_NETWORK_ERRORS,
    error_code,
    http_status,
    is_retryable,
    is_server_error,
    is_throttling,
)

__all__ = [
    "SERVER_ERROR_CODES",
    "THROTTLING_CODES",
    "TRANSIENT_NETWORK_ERRORS",
    "error_code",
    "http_status",
    "is_retryable",
    "is_server_error",
    "is_throttling",
]
