"""`consumer dlq list` and `consumer dlq replay`: DLQ administration.

Listing opens only the queue (and the overflow bucket, for oversized records): a broken
transform hook or an unreachable destination never keeps an operator from seeing what is parked.

Replay decodes each parked record again and applies it through the service's `ShardPipeline`
to the pipeline that failed (every pipeline for a record that could not be decoded), each sink
tried once (`deliver_once.py`); the record is deleted from the queue only once every one of
those sinks has applied it (buffering sinks flushed). One that fails again stays in the queue,
visible again at once, reported by position and error type only: the error's text may quote
the record (issue 20.5). The sinks are versioned: an old record never overwrites newer state.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from consumer.pipeline.decoders import Decoder, decode_kinesis, decode_streams
from consumer.pipeline.dlq import DlqMessage, ParkedRecord, SqsDeadLetterQueue
from consumer.pipeline.processor import DECODE_PIPELINE, Route
from consumer.records import DecodeError
from consumer.records.batch import RawRecord
from consumer.service.assembly import Runtime, open_runtime
from consumer.service.deliver_once import Failure, deliver_once
from consumer.service.sinks import sqs_dead_letter_queue
from consumer.settings import Settings

REPLAY_SHARD = "dlq-replay"


async def list_parked(settings: Settings, limit: int) -> list[DlqMessage]:
    """Up to `limit` parked records, without removing them (they stay hidden briefly while
    being read, then are made visible again)."""
    endpoints = settings.aws.endpoints()
    async with AsyncExitStack() as stack:
        sqs = await stack.enter_async_context(endpoints.aio_client("sqs"))
        s3 = (
            await stack.enter_async_context(endpoints.aio_client("s3"))
            if settings.dlq.overflow_bucket
            else None
        )
        dlq = sqs_dead_letter_queue(settings, sqs, s3)
        seen: list[DlqMessage] = []
        try:
            while len(seen) < limit:
                batch = await dlq.receive(min(10, limit - len(seen)), visibility_timeout_s=30)
                if not batch:
                    break
                seen.extend(batch)
        finally:
            for message in seen:
                await dlq.release(message)
        return seen


@dataclass
class ReplayReport:
    applied: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def _cause_type(failure: Failure) -> str:
    """The type of the error at the root of the failure's causes (a hook's own ValueError
    rather than the SinkError wrapping it): what a report may say, never the error's text."""
    error = failure.cause
    if error is None:
        return failure.error_type
    while error.__cause__ is not None:
        error = error.__cause__
    return type(error).__name__


async def _replay_one(
    runtime: Runtime, record: ParkedRecord, decoder: Decoder, enabled: set[str]
) -> str | None:
    """Why `record` stays parked, or None once every sink it goes to has applied it."""
    # Fresh sinks per record: parked records come in no particular order, and a sink may skip
    # what it believes it already wrote for a shard (audit does).
    # No filters: the record was taken by the pipeline that parked it.
    targets = [
        Route(route.sink)
        for route in runtime.routes(REPLAY_SHARD)
        if record.pipeline == DECODE_PIPELINE or route.sink.name == record.pipeline
    ]
    if not targets:
        return f"pipeline {record.pipeline} is not enabled ({sorted(enabled)})"
    raw = RawRecord(record.raw, record.sequence_number, record.arrival_ms or 0, "")
    results = decoder(raw, record.stream, record.shard_id)
    problem = next((r for r in results if isinstance(r, DecodeError)), None)
    if problem is not None:
        return f"still cannot be decoded ({type(problem).__name__})"
    failures = await deliver_once(runtime, record.shard_id, targets, results)
    if failures:  # reported; the record stays parked
        return f"{record.pipeline} failed again ({_cause_type(failures[0])})"
    return None


async def replay_parked(
    settings: Settings, limit: int, only_pipeline: str | None = None
) -> ReplayReport:
    if not settings.dlq.queue_url:
        raise ValueError("no dead-letter queue is configured (dlq.queue_url)")
    report = ReplayReport()
    decoder = decode_streams if settings.stream.mode == "streams" else decode_kinesis
    async with open_runtime(settings) as runtime:
        dlq = runtime.dead_letter_queue()
        assert isinstance(dlq, SqsDeadLetterQueue)  # a queue_url is configured
        enabled = {route.sink.name for route in runtime.routes(REPLAY_SHARD)}
        handled = 0
        retry_later: list[DlqMessage] = []
        while handled < limit:
            batch = await dlq.receive(min(10, limit - handled), visibility_timeout_s=120)
            if not batch:
                break
            for message in batch:
                handled += 1
                record = message.record
                if only_pipeline and record.pipeline != only_pipeline:
                    report.skipped += 1
                    retry_later.append(message)
                    continue
                why = await _replay_one(runtime, record, decoder, enabled)
                if why is None:
                    await dlq.delete(message)
                    report.applied += 1
                    continue
                report.failed += 1
                report.errors.append(f"{record.shard_id}@{record.sequence_number}: {why}")
                retry_later.append(message)
        for message in retry_later:
            await dlq.release(message)
    return report
