"""Classifying AWS errors for the readers' retry loops."""

from __future__ import annotations

import asyncio

import aiohttp
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from checkpoints.retry import SERVER_ERROR_CODES as SERVER_CODES
from checkpoints.retry import THROTTLING_CODES

# Network-level failures after which reading resumes from the last known position.
TRANSIENT_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    EndpointConnectionError,
    ConnectionClosedError,
    ReadTimeoutError,
    ResponseStreamingError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def http_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def is_throttling(error: ClientError) -> bool:
    return error_code(error) in THROTTLING_CODES


def is_server_error(error: ClientError) -> bool:
    return error_code(error) in SERVER_CODES or http_status(error) >= 500
