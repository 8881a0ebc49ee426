"""One classification of AWS errors: the lease table's retries and the readers' and sinks'
retries agree on every code (issue 16: their throttling lists differed)."""

from __future__ import annotations

import random

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from checkpoints.retry import RetryPolicy
from consumer.aws.backoff import Backoff
from consumer.aws.errors import (
    TRANSIENT_NETWORK_ERRORS,
    is_retryable,
    is_server_error,
    is_throttling,
)


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


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
        ResponseStreamingError(error="connection reset mid-body"),
    ],
)
def test_network_failures_are_retried_by_both(error: Exception) -> None:
    assert isinstance(error, TRANSIENT_NETWORK_ERRORS)
    assert is_retryable(error)


def test_a_refused_parameter_is_not_retried() -> None:
    assert not is_retryable(ParamValidationError(report="bad"))


def test_the_open_ended_backoff_draws_the_bounded_retrys_delays() -> None:
    """One formula: `Backoff` (readers' and sinks' loops) and `RetryPolicy` (one call)."""
    backoff = Backoff(base_s=0.1, cap_s=1.0, rng=random.Random(7))
    policy, rng = RetryPolicy(base_s=0.1, cap_s=1.0), random.Random(7)
    assert [backoff.next_delay() for _ in range(8)] == [
        policy.delay(n, rng.random) for n in range(8)
    ]
    backoff.reset()
    assert backoff.next_delay() <= 0.1
