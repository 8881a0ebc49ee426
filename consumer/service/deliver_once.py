"""Delivering decoded records once through the service's `ShardPipeline`, for callers that
retry elsewhere: the Lambda handler (Lambda retries from the lowest failed record) and `dlq
replay` (a record that fails again stays parked). Each sink is tried once per record (transient
errors too are final); failures are collected, not parked, and checkpoints go nowhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from consumer.pipeline.dlq import ParkedRecord
from consumer.pipeline.processor import DECODE_PIPELINE, RetryPolicy, Route
from consumer.pipeline.sink import Failures, FlushingSink, Sink, SinkError
from consumer.records import ChangeEvent, DecodeError
from consumer.records.batch import RawRecord, ReadBatch
from consumer.service.assembly import Runtime

# One try, no bisection: the caller's retry (Lambda's, an operator's) is the next try.
ONE_TRY = RetryPolicy(max_attempts=1, bisect=False)

Decoded = ChangeEvent | DecodeError


@dataclass(frozen=True)
class Failure:
    """A record not applied by `pipeline` (a sink's name, or "decode"), and why: `cause` is
    the sink's error, None for a record that could not be decoded."""

    pipeline: str
    sequence_number: str
    error_type: str
    cause: BaseException | None


class FailedRecords:
    """The failures of one delivery. To the pipeline it is the dead-letter queue (it receives
    only records that could not be decoded: the sinks report their own failures here) and the
    checkpointer (checkpoints go nowhere: the caller's transport keeps its position)."""

    def __init__(self) -> None:
        self.failures: list[Failure] = []

    def add(self, sink: str, event: ChangeEvent, error: BaseException) -> None:
        self.failures.append(
            Failure(sink, event.position.sequence_number, type(error).__name__, error)
        )

    async def park(self, records: Sequence[ParkedRecord]) -> None:
        self.failures.extend(
            Failure(r.pipeline, r.sequence_number, r.error_type, None)
            for r in records
            if r.pipeline == DECODE_PIPELINE
        )

    async def checkpoint(self, sequence_number: str, sub_sequence_number: int = 0) -> None:
        return None

    async def checkpoint_shard_end(self, child_shard_ids: Iterable[str] = ()) -> None:
        return None


class OneTrySink:
    """`sink`, tried once: its retryable failures become final, and a failed flush fails the
    records it held (they are reported, not retried here)."""

    def __init__(self, sink: Sink, failed: FailedRecords) -> None:
        self._sink = sink
        self._failed = failed
        self._unflushed: list[ChangeEvent] = []
        self.name = sink.name
        self.buffered = sink.buffered

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        try:
            failures = await self._sink.write(events)
        except Exception as error:
            for event in events:
                self._failed.add(self.name, event, error)
            raise SinkError(type(error).__name__, retryable=False) from error
        for index, failure in failures.items():
            self._failed.add(self.name, events[index], failure)
        if self.buffered:
            self._unflushed.extend(e for i, e in enumerate(events) if i not in failures)
        return {index: SinkError("reported", retryable=False) for index in failures}

    def wants_flush(self, now_monotonic: float) -> bool:
        return cast(FlushingSink, self._sink).wants_flush(now_monotonic)  # only if buffered

    async def flush(self) -> None:
        held, self._unflushed = self._unflushed, []
        try:
            await cast(FlushingSink, self._sink).flush()
        except Exception as error:  # reported for every record it held
            for event in held:
                self._failed.add(self.name, event, error)

    async def aclose(self) -> None:
        await self._sink.aclose()


async def deliver_once(
    runtime: Runtime, shard_id: str, routes: Sequence[Route], results: Sequence[Decoded]
) -> list[Failure]:
    """Delivers `results` (decoded already; a DecodeError stands for a bad record) through a
    ShardPipeline over `routes`, flushed; returns the records not applied, in no order."""
    failed = FailedRecords()
    records = [
        RawRecord(b"", r.position.sequence_number, r.position.arrival_ms or 0, "") for r in results
    ]
    decoded = {id(record): result for record, result in zip(records, results, strict=True)}
    pipeline = runtime.pipeline(
        shard_id,
        shard_id,
        failed,
        routes=[Route(OneTrySink(r.sink, failed), r.record_filter, ONE_TRY) for r in routes],
        decoder=lambda record, _stream, _shard: [decoded[id(record)]],
        dlq=failed,
    )
    try:
        await pipeline.process(ReadBatch(shard_id, records, None, None))
        await pipeline.drain()
    finally:
        await pipeline.aclose()
    return failed.failures
