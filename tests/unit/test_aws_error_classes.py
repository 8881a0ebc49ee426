"""One classification of AWS errors: the lease table's retries and the readers' and sinks'
retries agree on every code (issue 16: their throttling lists differed)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from consumer.aws.errors import is_retryable, is_server_error, is_throttling


def client_error(code: str, status: int = 400) -> ClientError:
    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "AnyOperation")


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("ProvisionedThroughputExceededException", True),
        ("ThrottlingException", True),
        ("Throttling", True),
        ("RequestLimitExceeded", True),
        ("TooManyRequestsException", True),
        ("LimitExceededException", True),
        ("KMSThrottlingException", True),
        ("InternalServerError", True),
        ("InternalFailure", True),
        ("ServiceUnavailable", True),
        ("InternalServerException", True),
        ("ConditionalCheckFailedException", False),
        ("ValidationException", False),
        ("ResourceNotFoundException", False),
        ("AccessDeniedException", False),
    ],
)
def test_both_retry_loops_classify_each_code_alike(code: str, retryable: bool) -> None:
    error = client_error(code)
    readers_retry = is_throttling(error) or is_server_error(error)
    assert is_retryable(error) is retryable
    assert readers_retry is retryable


def test_any_5xx_is_a_server_error_for_both() -> None:
    error = client_error("SomethingNew", 503)
    assert is_retryable(error) and is_server_error(error)
