"""Streams mode on AWS Lambda: the same pipelines behind a DynamoDB Streams event source mapping
(the baseline design of `consumer compare`; infra/cloudformation/lambda-streams.yaml).

Handler `consumer.lambda_handler.handler`, the service's CONSUMER_* settings, and a mapping with
`FunctionResponseTypes: [ReportBatchItemFailures]`. Each sink is tried once per invocation
(`consumer.service.deliver_once`); the response names the lowest sequence number not applied
everywhere (an undecodable record included), so Lambda checkpoints just before it and retries
from there: the rule the service's checkpoints follow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog

from consumer.records import DecodeError, decode_lambda_event
from consumer.service.assembly import open_runtime
from consumer.service.deliver_once import deliver_once
from consumer.settings import Settings, load_settings
from consumer.telemetry.logs import configure_logging

log = structlog.get_logger(__name__)

LAMBDA_SHARD = "lambda"
_settings: Settings | None = None


def _sequence_key(sequence_number: str) -> int:
    try:
        return int(sequence_number)
    except ValueError:
        return -1


async def handle_event(event: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    results = decode_lambda_event(event)
    failed: set[str] = set()
    for result in results:
        if isinstance(result, DecodeError):
            log.warning(
                "lambda.decode_error",
                position=str(result.position),
                error_type=type(result).__name__,
            )
    async with open_runtime(settings) as runtime:
        routes = runtime.routes(LAMBDA_SHARD)
        for failure in await deliver_once(runtime, LAMBDA_SHARD, routes, results):
            failed.add(failure.sequence_number)
            if failure.cause is not None:
                # Error types, never their text: it may quote the record (issue 20.5).
                log.warning(
                    "lambda.record_failed",
                    sink=failure.pipeline,
                    sequence_number=failure.sequence_number,
                    error_type=failure.error_type,
                )
    if not failed:
        return {"batchItemFailures": []}
    lowest = min(failed, key=_sequence_key)
    return {"batchItemFailures": [{"itemIdentifier": lowest}]}


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    """The Lambda entry point."""
    global _settings
    if _settings is None:
        _settings = load_settings()
        configure_logging(_settings.telemetry.log_level, _settings.telemetry.log_format)
    return asyncio.run(handle_event(event, _settings))
