"""Streams mode on AWS Lambda: the same pipelines behind a DynamoDB Streams event source mapping.

Configure the function with handler `consumer.lambda_handler.handler`, the same CONSUMER_*
settings as the service (pipelines, DLQ), and the event source mapping with
`FunctionResponseTypes: [ReportBatchItemFailures]` (plus BisectBatchOnFunctionError,
MaximumRetryAttempts and an OnFailure destination as you like). This is the baseline design
of `consumer compare`: identical sink logic, different transport.

Per invocation: the batch is decoded, filtered and written to every enabled pipeline through
the service's `ShardPipeline`, each sink tried once (`consumer.service.deliver_once`; buffering
sinks flushed before returning). The response names the lowest sequence number that is not
applied everywhere, so Lambda checkpoints just before it and retries from there, which is
the same rule the service's checkpoints follow. A record that cannot be decoded is reported
the same way; Lambda's retries and OnFailure destination then deal with it.
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
