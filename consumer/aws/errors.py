"""Classifying AWS errors: the one classification, defined in the lower package
(`checkpoints.retry`) whose lease table retries with it too."""

from botocore.exceptions import ClientError

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
    "call_failed",
    "error_code",
    "is_retryable",
    "is_server_error",
    "is_throttling",
]


def call_failed(error: ClientError) -> str:
    """The one line for a failed AWS call: "<Operation> failed with <Code>: <Message>"."""
    detail = error.response.get("Error", {})
    code, message = detail.get("Code", ""), detail.get("Message", "")
    return f"{error.operation_name} failed with {code}: {message}"
