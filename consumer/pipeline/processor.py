"""One shard's pipeline: decode, filter, deliver to every sink with retries, bisection and the
dead-letter queue, and checkpoint only behind what is done.

The checkpoint rule (as Lambda's ReportBatchItemFailures): batches go in shard order, one at a
time; a batch is done when every record is durably applied by every sink that takes it (for
buffering sinks: flushed), or parked. Only then may the checkpoint reach its last record, so
a crash re-delivers from the last checkpoint and loses nothing (the sinks are idempotent).

Failures (README: Failures) are retried, bisected and parked: in the DLQ, or with
`on_failure = stop` by stopping the shard (ShardStopped) before the record.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from botocore.exceptions import ClientError

from consumer.aws.backoff import Backoff
from consumer.aws.errors import TRANSIENT_NETWORK_ERRORS, is_retryable
from consumer.aws.fencing import fenced
from consumer.pipeline.added_latency import BATCH_READ_AT, AddedLatency
from consumer.pipeline.checkpoint_in_flight import CheckpointInFlight, Target
from consumer.pipeline.decoders import Decoder, decode_kinesis
from consumer.pipeline.dlq import DeadLetterQueue, DlqRejectedError, ParkedRecord
from consumer.pipeline.filters import RecordFilter
from consumer.pipeline.missing_destination import DestinationGone, MissingDestinations, missing_code
from consumer.pipeline.newest import item_key
from consumer.pipeline.retry_policy import OnFailure as OnFailure
from consumer.pipeline.retry_policy import RetryPolicy as RetryPolicy
from consumer.pipeline.sink import Failures, Sink, SinkError, flushing
from consumer.records import ChangeEvent, DecodeError
from consumer.records.batch import RawRecord, ReadBatch

log = structlog.get_logger(__name__)

DECODE_PIPELINE = "decode"
# The name the dead-letter queue goes by where sinks are named (missing destinations, waits).
DLQ_SINK = "dlq"
# Tries of a DLQ that refuses records for good before the shard stops (see _park).
PARK_REFUSALS = 3


@dataclass
class Route:
    """A sink, the records it takes, and its failure policy."""

    sink: Sink
    record_filter: RecordFilter = field(default_factory=lambda: RecordFilter([]))
    policy: RetryPolicy = field(default_factory=RetryPolicy)


class Checkpointer(Protocol):
    """Where progress goes (a lease handle in the service). Raises when the lease is lost.

    A checkpointer may also have `ensure_owned()`, which raises unless the lease is still
    valid by the local clock: the pipeline calls it before every sink write.
    """

    async def checkpoint(self, sequence_number: str, sub_sequence_number: int = 0) -> object: ...

    async def checkpoint_shard_end(self, child_shard_ids: Iterable[str] = ()) -> None: ...


class ShardStopped(RuntimeError):
    """A pipeline with on_failure=stop could not apply a record; the shard stops before it."""


class OutageAbandoned(Exception):
    """A retry's wait after `ShardPipeline.stop_waiting`: the batch is left unfinished (never
    checkpointed) instead of waiting out a failing sink or DLQ."""


@dataclass
class PipelineStats:
    records: int = 0
    changes: int = 0
    parked: int = 0
    park_refusals: int = 0
    retries: int = 0
    checkpoints: int = 0
    # Wall time from the newest change's ApproximateCreationDateTime to its apply everywhere.
    last_change_age_ms: int = 0
    sink_seconds: dict[str, float] = field(default_factory=dict)
    sink_failures: dict[str, int] = field(default_factory=dict)
    # Per sink: writes the shard waited on because the destination refused or failed them
    # (transient errors: throttled, 5xx, unreachable, write-blocked, access denied).
    sink_waits: dict[str, int] = field(default_factory=dict)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, SinkError):
        return error.retryable
    if isinstance(error, ClientError):
        return is_retryable(error)
    return isinstance(error, TRANSIENT_NETWORK_ERRORS)


def _decisive(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception a failed batch raises: a ShardStopped if any route stopped, else the
    first (e.g. the lease's LeaseLost)."""
    first: BaseException = group.subgroup((ShardStopped, DestinationGone)) or group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def _kind(error: BaseException) -> str:
    """What a log line may say of an error: its type, never its text (sink and transform
    errors can carry attribute values; DESIGN.md: no item contents in logs)."""
    return type(error).__name__


@dataclass
class RateLimitedLog:
    """Logs an event at most once per `interval_s` per event name, with how many were held
    back since: a throttled destination retried for an hour must not write a line per try."""

    clock: Callable[[], float] = time.monotonic
    interval_s: float = 10.0
    _last: dict[str, float] = field(default_factory=dict)
    _held: dict[str, int] = field(default_factory=dict)

    def warning(self, event: str, **fields: Any) -> None:
        now = self.clock()
        last = self._last.get(event)
        if last is not None and now - last < self.interval_s:
            self._held[event] = self._held.get(event, 0) + 1
            return
        self._last[event] = now
        log.warning(event, suppressed=self._held.pop(event, 0), **fields)


class ShardPipeline:
    """Runs one shard's batches through every route and checkpoints behind them.

    Not safe for concurrent `process` calls: a shard is processed one batch at a time.
    """

    def __init__(
        self,
        stream: str,
        shard_id: str,
        routes: Sequence[Route],
        dlq: DeadLetterQueue,
        checkpointer: Checkpointer,
        decoder: Decoder = decode_kinesis,
        checkpoint_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        outage_backoff_base_s: float = 0.5,
        missing_destination_bound_s: float | None = None,
        stats: PipelineStats | None = None,
        added_latency: AddedLatency | None = None,
    ) -> None:
        """`missing_destination_bound_s`: how long a destination may be missing (deleted
        table, bucket, index or queue) before the shard stops with DestinationGone so that
        its lease can go to another worker; None waits for it forever (replay, Lambda).
        `stats`, `added_latency`: counters to add into (a worker's, shared by its shards)."""
        self.stream = stream
        self.shard_id = shard_id
        self._routes = list(routes)
        self._buffered = [sink for r in self._routes if (sink := flushing(r.sink)) is not None]
        self._dlq = dlq
        self._checkpointer = checkpointer
        self._decoder = decoder
        self._interval_s = checkpoint_interval_s
        self._clock = clock
        self._wall_ms = wall_clock_ms
        self._outage_base_s = outage_backoff_base_s
        self._done: tuple[str, int] | None = None  # last record fully processed
        self._checkpointed: tuple[str, int] | None = None
        self._last_checkpoint_at = clock()
        # Written beside the delivery path: a batch never waits on the lease table.
        self._checkpoint_write = CheckpointInFlight(checkpointer.checkpoint)
        self._checkpoint_owed: Target | None = None  # due, not yet started (one was in flight)
        self.stats = stats if stats is not None else PipelineStats()
        self.added_latency = added_latency if added_latency is not None else AddedLatency()
        self._retry_log = RateLimitedLog(clock=clock)
        self.missing_destinations: MissingDestinations | None = (
            None
            if missing_destination_bound_s is None
            else MissingDestinations(missing_destination_bound_s, clock)
        )
        self._ensure_owned: Callable[[], None] = getattr(
            checkpointer, "ensure_owned", lambda: None
        )
        self._stopping = asyncio.Event()  # set by stop_waiting: retry waits end at once

    # --- decoding and parking -----------------------------------------------------------

    def _decode(self, batch: ReadBatch) -> tuple[list[ChangeEvent], list[ParkedRecord]]:
        events: list[ChangeEvent] = []
        bad: list[ParkedRecord] = []
        for record in batch.records:
            for result in self._decoder(record, self.stream, batch.shard_id):
                if isinstance(result, DecodeError):
                    bad.append(self._parked_decode_error(record, result))
                else:
                    events.append(result)
        return events, bad

    def _parked_decode_error(self, record: RawRecord, error: DecodeError) -> ParkedRecord:
        position = error.position
        return ParkedRecord(
            pipeline=DECODE_PIPELINE,
            error=str(error),
            error_type="DecodeError",
            stream=self.stream,
            shard_id=self.shard_id,
            sequence_number=record.sequence_number,
            sub_sequence_number=position.sub_sequence_number if position else 0,
            arrival_ms=record.arrival_ms,
            event_id=None,
            raw=record.data,
        )

    def _parked(
        self, sink: str, event: ChangeEvent, error: BaseException, attempts: int
    ) -> ParkedRecord:
        return ParkedRecord(
            pipeline=sink,
            error=str(error),
            error_type=type(error).__name__,
            stream=self.stream,
            shard_id=self.shard_id,
            sequence_number=event.position.sequence_number,
            sub_sequence_number=event.position.sub_sequence_number,
            arrival_ms=event.position.arrival_ms,
            event_id=event.event_id,
            raw=event.raw,
            attempts=attempts,
        )

    async def _park(self, records: Sequence[ParkedRecord]) -> None:
        """Parks durably; while the DLQ is down the shard waits (nothing may be lost). A DLQ
        that refuses the records for good (DlqRejectedError) stops the shard after a few
        tries, with one line naming the first record: never a silent retry forever."""
        if not records:
            return
        backoff = Backoff(base_s=self._outage_base_s, cap_s=30.0)
        refusals = 0
        while True:
            self._ensure_owned()  # a lost lease parks nothing: the next owner reads these again
            try:
                with fenced(self._ensure_owned):  # nor sends a request after its local expiry
                    await self._dlq.park(records)
                self._seen_present(DLQ_SINK)
                self.stats.parked += len(records)  # the DLQ logs each one as what it did
                return
            except DlqRejectedError as error:
                if self._waits_for_missing(DLQ_SINK, error):  # the queue was deleted
                    log.error("dlq.missing", error_type=_kind(error), records=len(records))
                    await self._pause(backoff, DLQ_SINK)
                    continue
                refusals += 1
                self.stats.park_refusals += 1
                first = records[0]
                if refusals >= PARK_REFUSALS:
                    raise ShardStopped(
                        f"cannot park record {first.shard_id}@{first.sequence_number} "
                        f"({first.pipeline}: {first.error_type}) in the dead-letter queue: "
                        f"{error}"
                    ) from None
                log.error("dlq.refused", error_type=type(error).__name__, records=len(records))
                await self._wait(backoff.sleep())
            except Exception as error:  # any other DLQ failure: an outage, wait, never drop
                self._ensure_owned()  # unless the park was fenced: the lease is gone, stop
                self._waits_for_missing(DLQ_SINK, error)  # e.g. the overflow bucket is gone
                log.error("dlq.unavailable", error_type=type(error).__name__, records=len(records))
                await self._pause(backoff, DLQ_SINK)

    async def _give_up(
        self, route: Route, failed: Sequence[tuple[ChangeEvent, BaseException, int]]
    ) -> None:
        if not failed:
            return
        name = route.sink.name
        self.stats.sink_failures[name] = self.stats.sink_failures.get(name, 0) + len(failed)
        if route.policy.on_failure is OnFailure.STOP:
            event, error, _ = failed[0]
            # The error's type only: its text may quote the record, and this reason is logged
            # and shown by /readyz (issue 20.5).
            raise ShardStopped(
                f"pipeline {name} cannot apply {event.position}: {_kind(error)} (on_failure=stop)"
            )
        await self._park([self._parked(name, event, error, n) for event, error, n in failed])

    # --- delivery ------------------------------------------------------------------------

    def _too_old(self, event: ChangeEvent, policy: RetryPolicy) -> bool:
        arrival = event.position.arrival_ms
        if policy.max_record_age_s < 0 or arrival is None:
            return False
        return (self._wall_ms() - arrival) / 1000 > policy.max_record_age_s

    async def _write(self, sink: Sink, chunk: Sequence[ChangeEvent]) -> Any:
        self._ensure_owned()  # fencing: never write for a shard we may no longer own
        started = time.perf_counter()
        try:
            with fenced(self._ensure_owned):  # and before each request it sends
                return await sink.write(chunk)
        finally:
            elapsed = time.perf_counter() - started
            self.stats.sink_seconds[sink.name] = self.stats.sink_seconds.get(sink.name, 0) + elapsed

    async def _deliver(self, route: Route, events: Sequence[ChangeEvent]) -> None:
        policy = route.policy
        backoff = Backoff(base_s=policy.backoff_base_s, cap_s=policy.backoff_cap_s)
        work: deque[tuple[list[ChangeEvent], int]] = deque([(list(events), 0)])
        while work:
            chunk, attempts = work.popleft()
            expired = [e for e in chunk if self._too_old(e, policy)]
            if expired:
                age_error = SinkError(
                    f"record older than max_record_age_s={policy.max_record_age_s}",
                    retryable=False,
                )
                await self._give_up(route, [(e, age_error, attempts) for e in expired])
                expired_ids = {id(e) for e in expired}
                chunk = [e for e in chunk if id(e) not in expired_ids]
            if not chunk:
                continue
            try:
                failures = await self._write(route.sink, chunk)
            except Exception as error:  # classified below; nothing is dropped
                self._ensure_owned()  # the lease is gone (the write was fenced): stop here
                self.stats.retries += 1
                if self._waits_for_missing(route.sink.name, error) or is_transient(error):
                    self._count_wait(route.sink.name)
                    self._retry_log.warning(
                        "sink.transient_error", sink=route.sink.name, error_type=_kind(error)
                    )
                    await self._pause(backoff, route.sink.name)
                    work.appendleft((chunk, attempts))
                elif policy.bisect and len(chunk) > 1:
                    middle = len(chunk) // 2
                    work.appendleft((chunk[middle:], attempts))
                    work.appendleft((chunk[:middle], attempts))
                elif policy.max_attempts != -1 and attempts + 1 >= policy.max_attempts:
                    await self._give_up(route, [(e, error, attempts + 1) for e in chunk])
                else:
                    self._retry_log.warning(
                        "sink.batch_error", sink=route.sink.name, error_type=_kind(error)
                    )
                    await self._wait(backoff.sleep())
                    work.appendleft((chunk, attempts + 1))
                continue
            missing = self._missing_among(route.sink.name, failures)
            if not failures:
                backoff.reset()
                continue
            retry: list[ChangeEvent] = []
            rejected: list[tuple[ChangeEvent, BaseException, int]] = []
            for index, failure in sorted(failures.items()):
                if failure.retryable or index in missing:
                    retry.append(chunk[index])
                else:
                    rejected.append((chunk[index], failure, attempts + 1))
            if len(retry) < len(chunk):
                backoff.reset()  # progress: only a run of failed writes backs off further
            await self._give_up(route, rejected)
            if rejected and getattr(route.sink, "collapses_per_key", False):
                # The sink wrote only the newest change of each key, and that one failed: the
                # changes it superseded were never written. Deliver them again without it, so
                # the newest change that can be applied is applied (and only the bad one parked).
                ids = {id(event) for event, _, _ in rejected}
                keys = {item_key(event) for event, _, _ in rejected}
                superseded = [e for e in chunk if id(e) not in ids and item_key(e) in keys]
                work.append((superseded, attempts))
            if retry:
                self.stats.retries += 1
                self._count_wait(route.sink.name)
                first = next(f for i, f in failures.items() if f.retryable or i in missing)
                self._retry_log.warning(
                    "sink.records_retry",
                    sink=route.sink.name,
                    records=len(retry),
                    error_type=_kind(first),
                )
                await self._pause(backoff, route.sink.name)
                work.appendleft((retry, attempts))

    def _count_wait(self, sink: str) -> None:
        self.stats.sink_waits[sink] = self.stats.sink_waits.get(sink, 0) + 1

    # --- missing destinations (consumer/pipeline/missing_destination.py) -----------------

    def _waits_for_missing(self, sink: str, error: BaseException) -> bool:
        """True if `error` says `sink`'s destination does not exist and this pipeline bounds
        that wait: the caller waits and tries again. Raises DestinationGone past the bound."""
        tracker = self.missing_destinations
        if tracker is None or (code := missing_code(error)) is None:
            return False
        tracker.seen_missing(sink, code, self.shard_id)
        return True

    def _missing_among(self, sink: str, failures: Failures) -> frozenset[int]:
        """The records of a write that failed because the destination is missing (they wait,
        never parked); with none, the write reached the destination."""
        tracker = self.missing_destinations
        if tracker is None:
            return frozenset()
        missing = {index: code for index, f in failures.items() if (code := missing_code(f))}
        if not missing:
            tracker.seen_present(sink)
            return frozenset()
        tracker.seen_missing(sink, next(iter(missing.values())), self.shard_id)
        return frozenset(missing)

    def _seen_present(self, sink: str) -> None:
        if self.missing_destinations is not None:
            self.missing_destinations.seen_present(sink)

    async def _pause(self, backoff: Backoff, sink: str) -> None:
        """The backoff's next delay, cut short at a missing destination's bound, so the
        shard lets its lease go at the bound rather than up to a backoff cap later."""
        tracker = self.missing_destinations
        if tracker is None or sink not in tracker.missing:
            await self._wait(backoff.sleep())
            return
        await self._wait(asyncio.sleep(min(backoff.next_delay(), tracker.remaining_s(sink) + 0.01)))

    def stop_waiting(self) -> None:
        """A planned stop (shutdown, handoff): from now on no retry waits for a failing sink or
        DLQ. The wait under way and every later one raise OutageAbandoned, so the batch in
        flight is left unfinished and a drain checkpoints only what was flushed before."""
        self._stopping.set()

    async def _wait(self, sleep: Coroutine[Any, Any, None]) -> None:
        """A retry's wait, cut short by `stop_waiting` (then OutageAbandoned)."""
        sleeping = asyncio.ensure_future(sleep)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            stopping.cancel()
        if self._stopping.is_set():
            raise OutageAbandoned(f"shard {self.shard_id} stopped while a destination failed")

    async def _deliver_timed(
        self, route: Route, events: Sequence[ChangeEvent], batch: ReadBatch
    ) -> None:
        BATCH_READ_AT.set(batch.read_at)  # this task's own context: for measuring sinks
        await self._deliver(route, events)
        if batch.read_at is not None and events:
            self.added_latency.add(route.sink.name, self._clock() - batch.read_at, len(events))

    # --- the batch -----------------------------------------------------------------------

    async def process(self, batch: ReadBatch) -> None:
        """Applies one batch everywhere (or parks what cannot be applied), then checkpoints
        when a checkpoint is due. At SHARD_END it flushes and checkpoints SHARD_END."""
        self._count_written(self._checkpoint_write.check())  # raises if the last write failed
        events, undecodable = self._decode(batch)
        self.stats.records += len(batch.records)
        self.stats.changes += len(events)
        await self._park(undecodable)
        if events:
            try:
                async with asyncio.TaskGroup() as deliveries:
                    for route in self._routes:
                        selected = events
                        if route.record_filter:
                            # Each event parses its record once, shared by every route and the
                            # sinks' views.
                            selects = route.record_filter.selects
                            selected = [e for e in events if selects(e)]
                        deliveries.create_task(self._deliver_timed(route, selected, batch))
            except BaseExceptionGroup as failed:
                # One route's failure (a stop, a lost lease) ends the batch; callers handle
                # the exception itself, not a group of them.
                raise _decisive(failed) from None
            newest_us = max(event.created_at_us for event in events)
            self.stats.last_change_age_ms = max(0, self._wall_ms() - newest_us // 1000)
        if batch.records:
            last = batch.records[-1]
            sub_sequence = 0
            if events and events[-1].position.sequence_number == last.sequence_number:
                sub_sequence = events[-1].position.sub_sequence_number
            self._done = (last.sequence_number, sub_sequence)
        if batch.shard_end:
            await self.finish_shard(batch.child_shard_ids or ())
        else:
            await self.checkpoint_if_due()

    async def _flush_all(self) -> None:
        for sink in self._buffered:
            backoff = Backoff(base_s=self._outage_base_s, cap_s=30.0)
            while True:
                self._ensure_owned()  # audit is not versioned: no flush without the lease
                try:
                    with fenced(self._ensure_owned):
                        await sink.flush()
                    self._seen_present(sink.name)
                    break
                except Exception as error:  # the buffer is kept; retry until it is durable
                    self._ensure_owned()  # unless the flush was fenced: stop here
                    if self._waits_for_missing(sink.name, error):
                        self._count_wait(sink.name)
                    log.error("sink.flush_failed", sink=sink.name, error_type=_kind(error))
                    await self._pause(backoff, sink.name)

    async def checkpoint_if_due(self, force: bool = False) -> None:
        now = self._clock()
        if force or (
            any(sink.wants_flush(now) for sink in self._buffered)
            if self._buffered
            else now - self._last_checkpoint_at >= self._interval_s
        ):
            try:
                await self._flush_all()
                self._checkpoint_owed = self._done  # applied everywhere and flushed
            except OutageAbandoned:
                if not force:
                    raise
                # A drain after stop_waiting: a sink still cannot flush, so the checkpoint
                # goes no further than what was flushed before (the owed one, if any).
            self._last_checkpoint_at = now
        owed = self._checkpoint_owed
        if owed is not None and owed != self._checkpointed:
            if force:
                self._count_written(await self._checkpoint_write.settle())
            elif self._checkpoint_write.busy:
                return  # written at a later batch, once the write in flight is done
            self._count_written(await self._checkpoint_write.start(owed))
            self._checkpointed = owed
        if force:
            self._count_written(await self._checkpoint_write.settle())

    def _count_written(self, targets: list[Target]) -> None:
        self.stats.checkpoints += len(targets)

    async def drain(self) -> None:
        """Before a handoff or shutdown: flush every sink and checkpoint what is done (after
        `stop_waiting`, a sink that fails to flush is left: only what was flushed before)."""
        await self.checkpoint_if_due(force=True)

    async def finish_shard(self, child_shard_ids: Iterable[str] = ()) -> None:
        await self._flush_all()
        self._count_written(await self._checkpoint_write.settle())
        await self._checkpointer.checkpoint_shard_end(tuple(child_shard_ids))
        self.stats.checkpoints += 1

    async def aclose(self) -> None:
        # After a drain nothing is in flight; without one (a lost lease, a stopped shard) the
        # write is abandoned: the next owner re-delivers from the previous checkpoint.
        await self._checkpoint_write.cancel()
