"""Throttling and 5xx from the lease table: retried with backoff and full jitter, counted,
never fatal. No emulator throttles, so a fake client raises botocore's own ClientError."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from checkpoints.errors import LeaseTableUnavailable
from checkpoints.retry import RetryPolicy, RetryStats, call_with_retry, is_retryable
from checkpoints.table import LeaseTable


def client_error(code: str, status: int = 400, item: dict[str, Any] | None = None) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    if item is not None:
        response["Item"] = item
    return ClientError(response, "UpdateItem")


THROTTLE = client_error("ProvisionedThroughputExceededException")
THROTTLING = client_error("ThrottlingException")
SERVER = client_error("InternalServerError", 500)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def failing(errors: list[BaseException], result: str = "ok") -> Callable[[], Awaitable[str]]:
    async def operation() -> str:
        if errors:
            raise errors.pop(0)
        return result

    return operation


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (THROTTLE, True),
        (THROTTLING, True),
        (client_error("RequestLimitExceeded"), True),
        (SERVER, True),
        (client_error("SomethingNew", 503), True),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (client_error("ConditionalCheckFailedException"), False),
        (client_error("ValidationException"), False),
        (client_error("ResourceNotFoundException"), False),
    ],
)
def test_what_is_retried(error: BaseException, retryable: bool) -> None:
    assert is_retryable(error) is retryable


async def test_throttling_and_5xx_are_retried_with_full_jitter_and_counted() -> None:
    stats = RetryStats()
    sleeps = Sleeps()
    policy = RetryPolicy(base_s=0.1, cap_s=0.3, max_attempts=10)
    result = await call_with_retry(
        failing([THROTTLE, THROTTLING, SERVER, THROTTLE]), policy, stats, sleep=sleeps,
        rng=lambda: 1.0,
    )
    assert result == "ok"
    assert stats.retries == {
        "ProvisionedThroughputExceededException": 2,
        "ThrottlingException": 1,
        "InternalServerError": 1,
    }
    assert sleeps.calls == [0.1, 0.2, 0.3, 0.3]  # exponential, capped (rng=1: the maximum)


async def test_jitter_spreads_delays_between_zero_and_the_cap() -> None:
    sleeps = Sleeps()
    values = iter([0.0, 0.5])
    await call_with_retry(
        failing([THROTTLE, THROTTLE]), RetryPolicy(base_s=1.0, cap_s=8.0), RetryStats(),
        sleep=sleeps, rng=lambda: next(values),
    )
    assert sleeps.calls == [0.0, 1.0]


async def test_other_errors_are_raised_at_once() -> None:
    stats = RetryStats()
    with pytest.raises(ClientError):
        await call_with_retry(
            failing([client_error("ValidationException")]), RetryPolicy(), stats, sleep=Sleeps()
        )
    assert stats.total_retries == 0


async def test_after_the_last_attempt_the_table_is_unavailable() -> None:
    stats = RetryStats()
    with pytest.raises(LeaseTableUnavailable):
        await call_with_retry(
            failing([THROTTLE] * 5), RetryPolicy(max_attempts=3), stats, sleep=Sleeps()
        )
    assert stats.retries["ProvisionedThroughputExceededException"] == 2
    assert stats.gave_up["ProvisionedThroughputExceededException"] == 1


async def test_a_deadline_stops_retrying() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(LeaseTableUnavailable):
        await call_with_retry(
            failing([THROTTLE] * 50), RetryPolicy(base_s=0.5, cap_s=0.5, max_attempts=50),
            RetryStats(), deadline=2.0, sleep=sleep, clock=lambda: now[0], rng=lambda: 1.0,
        )
    assert now[0] <= 2.0


class ThrottlingClient:
    """A DynamoDB client double: the first calls of each operation raise the given errors."""

    def __init__(self, errors: list[BaseException], answer: dict[str, Any]) -> None:
        self.errors = errors
        self.answer = answer
        self.calls = 0

    async def update_item(self, **params: Any) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.answer


def fast_table(client: Any) -> LeaseTable:
    return LeaseTable(client, "t", RetryPolicy(base_s=0.001, cap_s=0.002, max_attempts=6))


async def test_the_lease_table_survives_throttling_and_counts_it() -> None:
    client = ThrottlingClient([THROTTLE, SERVER], {})
    table = fast_table(client)
    assert await table.heartbeat("w1", 4, 2) == 5
    assert client.calls == 3
    assert table.stats.retry.total_retries == 2
    assert table.stats.writes["heartbeat"] == 1


async def test_a_retried_write_that_had_landed_is_recognised_as_ours() -> None:
    # The first attempt timed out with a 500 but was applied; the retry then fails its
    # condition, and ALL_OLD shows our own change: a success, not a conflict.
    ours = {
        "leaseKey": {"S": "s1"}, "leaseOwner": {"S": "w2"}, "leaseCounter": {"N": "6"},
        "checkpoint": {"S": "TRIM_HORIZON"},
    }
    client = ThrottlingClient(
        [SERVER, client_error("ConditionalCheckFailedException", item=ours)], {}
    )
    lease = await fast_table(client).take("s1", "w1", 5, "w2")
    assert lease is not None
    assert (lease.owner, lease.counter) == ("w2", 6)


async def test_a_conflict_on_the_first_attempt_is_a_conflict() -> None:
    theirs = {
        "leaseKey": {"S": "s1"}, "leaseOwner": {"S": "w3"}, "leaseCounter": {"N": "6"},
        "checkpoint": {"S": "TRIM_HORIZON"},
    }
    client = ThrottlingClient([client_error("ConditionalCheckFailedException", item=theirs)], {})
    table = fast_table(client)
    assert await table.take("s1", "w1", 5, "w2") is None
    assert table.stats.conditional_failures["take"] == 1


async def test_persistent_throttling_surfaces_as_unavailable_not_a_crash() -> None:
    client = ThrottlingClient([THROTTLE] * 10, {})
    with pytest.raises(LeaseTableUnavailable):
        await fast_table(client).heartbeat("w1", 4, 2)
