"""The one classification of AWS errors and backoff with full jitter (the service reaches them
through `consumer.aws`), and the bounded retry of lease-table calls: throttling, 5xx answers
and connection failures are retried, anything else (a failed condition, a validation error, a
missing table) raised at once; the last failure as `LeaseTableUnavailable`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from checkpoints.errors import LeaseTableUnavailable

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "LimitExceededException",
        "KMSThrottlingException",
    }
)
SERVER_ERROR_CODES = frozenset(
    {"InternalServerError", "InternalFailure", "ServiceUnavailable", "InternalServerException"}
)
# Network-level failures: the call may be tried again (a reader resumes from its last position).
TRANSIENT_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    BotoConnectionError,  # EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError
    ConnectionClosedError,
    ReadTimeoutError,
    ResponseStreamingError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)


def full_jitter(attempt: int, base_s: float, cap_s: float, rng: Callable[[], float]) -> float:
    """Attempt n (0-based) waits uniform(0, min(cap_s, base_s * 2**n))."""
    return float(rng() * min(cap_s, base_s * (2**attempt)))


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt n (0-based) sleeps uniform(0, min(cap_s, base_s * 2**n)) before the next one."""

    base_s: float = 0.05
    cap_s: float = 2.0
    max_attempts: int = 8

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s or self.max_attempts < 1:
            raise ValueError("RetryPolicy needs 0 < base_s <= cap_s and max_attempts >= 1")

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        return full_jitter(attempt, self.base_s, self.cap_s, rng)


@dataclass
class RetryStats:
    """Counters a benchmark or a metrics exporter reads; mutated only by `call_with_retry`."""

    retries: Counter[str] = field(default_factory=Counter)
    gave_up: Counter[str] = field(default_factory=Counter)

    @property
    def total_retries(self) -> int:
        return sum(self.retries.values())


def error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "ClientError"))
    return type(error).__name__


def is_throttling(error: ClientError) -> bool:
    return error_code(error) in THROTTLING_CODES


def is_server_error(error: ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error_code(error) in SERVER_ERROR_CODES or int(status) >= 500


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, ClientError):
        return is_throttling(error) or is_server_error(error)
    return isinstance(error, TRANSIENT_NETWORK_ERRORS)


async def call_with_retry(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    stats: RetryStats,
    *,
    deadline: float | None = None,
    on_retry: Callable[[BaseException], None] | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    rng: Callable[[], float] = random.random,
) -> T:
    """Runs `operation` until it succeeds, fails with a non-retryable error (raised as is), or
    runs out of attempts or time (`deadline` on `clock`): then `LeaseTableUnavailable`.

    `on_retry` runs before each retry: a conditional write that is retried may already have
    been applied, and its caller must then resolve a ConditionalCheckFailed differently.
    """
    attempt = 0
    while True:
        try:
            return await operation()
        except (ClientError, BotoCoreError) as error:
            if not is_retryable(error):
                raise
            code = error_code(error)
            delay = policy.delay(attempt, rng)
            attempt += 1
            out_of_time = deadline is not None and clock() + delay >= deadline
            if attempt >= policy.max_attempts or out_of_time:
                stats.gave_up[code] += 1
                raise LeaseTableUnavailable(
                    f"lease table call failed after {attempt} attempt(s): {code}"
                ) from error
            stats.retries[code] += 1
            if on_retry is not None:
                on_retry(error)
            await sleep(delay)
