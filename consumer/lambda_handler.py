"""Streams mode on AWS Lambda: the same pipelines behind a DynamoDB Streams event source mapping.

Configure the function with handler `consumer.lambda_handler.handler`, the same CONSUMER_*
settings as the service (pipelines, DLQ), and the event source mapping with
`FunctionResponseTypes: [ReportBatchItemFailures]` (plus BisectBatchOnFunctionError,
MaximumRetryAttempts and an OnFailure destination as you like). This is the baseline design
of `consumer compare`: identical sink logic, different transport.

Per invocation: the batch is decoded, filtered and written to every enabled pipeline (buffering
sinks flushed before returning). The response names the lowest sequence number that is not
applied everywhere, so Lambda checkpoints just before it and retries from there, which is
the same rule the service's checkpoints follow. A record that cannot be decoded is reported
the same way; Lambda's retries and OnFailure destination then deal with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

import orjson
import structlog

from consumer.pipeline.processor import Route
from consumer.records import ChangeEvent, DecodeError, decode_lambda_event
from consumer.service.pipelines import open_pipeline_clients, routes_factory
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


async def _apply(route: Route, events: Sequence[ChangeEvent]) -> set[str]:
    """The sequence numbers this route could not apply."""
    selected: list[ChangeEvent] = []
    for event in events:
        if route.record_filter and not route.record_filter.matches(orjson.loads(event.raw)):
            continue
        selected.append(event)
    if not selected:
        return set()
    try:
        failures = await route.sink.write(selected)
        if route.sink.buffered:
            await route.sink.flush()
    except Exception as error:  # the whole batch is retried by Lambda
        # Error types, never their text: it may quote the record (issue 20.5).
        log.warning("lambda.sink_failed", sink=route.sink.name, error_type=type(error).__name__)
        return {event.position.sequence_number for event in selected}
    for index, failure in failures.items():
        log.warning(
            "lambda.record_failed",
            sink=route.sink.name,
            sequence_number=selected[index].position.sequence_number,
            error_type=type(failure).__name__,
        )
    return {selected[index].position.sequence_number for index in failures}


async def handle_event(event: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    results = decode_lambda_event(event)
    failed: set[str] = set()
    events: list[ChangeEvent] = []
    for result in results:
        if isinstance(result, DecodeError):
            log.warning(
                "lambda.decode_error",
                position=str(result.position),
                error_type=type(result).__name__,
            )
            failed.add(result.position.sequence_number)
        else:
            events.append(result)
    async with AsyncExitStack() as stack:
        clients = await open_pipeline_clients(settings, stack)
        routes = routes_factory(settings, clients)(LAMBDA_SHARD)
        try:
            outcomes = await asyncio.gather(*(_apply(route, events) for route in routes))
        finally:
            for route in routes:
                await route.sink.aclose()
    for outcome in outcomes:
        failed |= outcome
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
