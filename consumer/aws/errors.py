"""Classifying AWS errors: the one classification, defined in the lower package
(`checkpoints.retry`) whose lease table retries with it too."""

from checkpoints.retry import (
    SERVER_ERROR_CODES,
    THROTTLING_CODES,
    TRANSIENT_NETWORK_ERRORS,
    error_code,
    is_retryable,
    is_server_error,
    is_throttling,
)

__all__ = [
    "SERVER_ERROR_CODES",
    "THROTTLING_CODES",
    "TRANSIENT_NETWORK_ERRORS",
    "error_code",
    "is_retryable",
    "is_server_error",
    "is_throttling",
]
