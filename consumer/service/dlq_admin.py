"""Operating the dead-letter queue: list parked records, and re-drive them through the pipelines.

`replay` takes each parked record, decodes it again, and applies it to the pipeline that
failed (every pipeline for a record that could not be decoded); a record is deleted from the
queue only once every one of those sinks has applied it (buffering sinks are flushed first).
A record that fails again stays in the queue, visible again at once, and is reported by its
position and error type only: the error's text may quote the record (issue 20.5), and
`consumer dlq list` shows it from the message itself.
Because the sinks are versioned, re-driving an old record never overwrites newer state.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from consumer.pipeline.decoders import decode_kinesis, decode_streams
from consumer.pipeline.dlq import DlqMessage, SqsDeadLetterQueue
from consumer.pipeline.processor import DECODE_PIPELINE, Route
from consumer.records import DecodeError
from consumer.records.batch import RawRecord
from consumer.service.pipelines import open_pipeline_clients, routes_factory
from consumer.settings import Settings

REPLAY_SHARD = "dlq-replay"


@dataclass
class ReplayReport:
    applied: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def _cause_type(error: BaseException) -> str:
    """The type of the error at the root of `error`'s causes (a hook's own ValueError rather
    than the SinkError wrapping it): what a report may say, never the error's text."""
    while error.__cause__ is not None:
        error = error.__cause__
    return type(error).__name__


async def _open_dlq(
    settings: Settings, stack: AsyncExitStack
) -> tuple[SqsDeadLetterQueue, Callable[[str], list[Route]]]:
    if not settings.dlq.queue_url:
        raise ValueError("no dead-letter queue is configured (dlq.queue_url)")
    clients = await open_pipeline_clients(settings, stack)
    dlq = SqsDeadLetterQueue(
        clients.sqs,
        settings.dlq.queue_url,
        s3_client=clients.s3,
        overflow_bucket=settings.dlq.overflow_bucket,
        overflow_prefix=settings.dlq.overflow_prefix,
    )
    return dlq, routes_factory(settings, clients)


async def list_parked(settings: Settings, limit: int) -> list[DlqMessage]:
    """Up to `limit` parked records, without removing them (they stay hidden briefly while
    being read, then are made visible again)."""
    async with AsyncExitStack() as stack:
        dlq, _ = await _open_dlq(settings, stack)
        seen: list[DlqMessage] = []
        while len(seen) < limit:
            batch = await dlq.receive(min(10, limit - len(seen)), visibility_timeout_s=30)
            if not batch:
                break
            seen.extend(batch)
        for message in seen:
            await dlq.release(message)
        return seen


async def replay_parked(
    settings: Settings, limit: int, only_pipeline: str | None = None
) -> ReplayReport:
    report = ReplayReport()
    decoder = decode_streams if settings.stream.mode == "streams" else decode_kinesis
    async with AsyncExitStack() as stack:
        dlq, make_routes = await _open_dlq(settings, stack)
        # Fresh sinks per record: parked records come in no particular order, and a sink may
        # skip what it believes it already wrote for a shard (audit does).
        enabled = {route.sink.name for route in make_routes(REPLAY_SHARD)}
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
                routes = make_routes(REPLAY_SHARD)
                targets = [
                    route
                    for route in routes
                    if record.pipeline == DECODE_PIPELINE or route.sink.name == record.pipeline
                ]
                where = f"{record.shard_id}@{record.sequence_number}"
                if not targets:
                    report.failed += 1
                    report.errors.append(
                        f"{where}: pipeline {record.pipeline} is not enabled ({sorted(enabled)})"
                    )
                    retry_later.append(message)
                    continue
                raw = RawRecord(record.raw, record.sequence_number, record.arrival_ms or 0, "")
                results = decoder(raw, record.stream, record.shard_id)
                problem = next((r for r in results if isinstance(r, DecodeError)), None)
                if problem is not None:
                    report.failed += 1
                    report.errors.append(
                        f"{where}: still cannot be decoded ({type(problem).__name__})"
                    )
                    retry_later.append(message)
                    continue
                events = [r for r in results if not isinstance(r, DecodeError)]
                try:
                    for route in targets:
                        failures = await route.sink.write(events)
                        if failures:
                            raise next(iter(failures.values()))
                        if route.sink.buffered:
                            await route.sink.flush()
                except Exception as error:  # reported; the record stays parked
                    report.failed += 1
                    report.errors.append(
                        f"{where}: {record.pipeline} failed again ({_cause_type(error)})"
                    )
                    retry_later.append(message)
                    continue
                await dlq.delete(message)
                report.applied += 1
        for message in retry_later:
            await dlq.release(message)
    return report
