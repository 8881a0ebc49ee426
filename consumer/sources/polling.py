"""Shared-throughput polling: GetShardIterator + GetRecords, paced per shard."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Annotated, Any

import structlog
from botocore.exceptions import ClientError
from pydantic import Field
from pydantic.dataclasses import dataclass

from consumer.aws.backoff import Backoff
from consumer.aws.errors import TRANSIENT_NETWORK_ERRORS, error_code, is_retryable
from consumer.records.batch import RawRecord, ReadBatch
from consumer.sources.lean import child_shard_ids, kinesis_records, lean_body
from consumer.sources.model import ShardGoneError, StartPosition

log = structlog.get_logger(__name__)

MIN_POLL_INTERVAL_S = 0.2  # 5 GetRecords calls/s per shard, shared by all pollers
MAX_POLL_INTERVAL_S = 1.0
ASSUMED_RECORD_BYTES = 2048  # a change record with both images of a small item


# The least time between two GetRecords calls for one shard (200 ms to 1 s: below 200 ms a
# single reader alone exhausts the shard's 5 calls/s); also the setting stream.polling_interval_s.
PollingInterval = Annotated[float, Field(ge=MIN_POLL_INTERVAL_S, le=MAX_POLL_INTERVAL_S)]


@dataclass(frozen=True)
class PollingOptions:
    """Pacing of one shard's GetRecords loop: `interval_s` (see PollingInterval); `limit` caps
    records per call (GetRecords' Limit, 1 to 10,000)."""

    interval_s: PollingInterval = 0.5
    limit: Annotated[int, Field(ge=1, le=10_000)] = 10_000
    # Records per call are also cut so that a batch weighs about this much (by the records
    # read so far): a 10,000-record call of 2 KB records is 20 MiB, past a shard's read-ahead.
    batch_bytes: int | None = None


class RecordLimit:
    """GetRecords' `Limit` for a byte target per batch, from the mean record size seen."""

    def __init__(self, most: int, batch_bytes: int | None) -> None:
        self._most = most
        self._batch_bytes = batch_bytes
        self._records = 0
        self._bytes = 0

    def saw(self, records: Sequence[RawRecord]) -> None:
        if self._batch_bytes is None:
            return  # next() needs no sizes
        self._records += len(records)
        self._bytes += sum(len(record.data) for record in records)

    def next(self) -> int:
        if self._batch_bytes is None:
            return self._most
        # Before any record is seen, assume records of ASSUMED_RECORD_BYTES: a first call of
        # 10,000 large records on each of 100 shards would be gigabytes.
        mean = max(1, self._bytes // self._records) if self._records else ASSUMED_RECORD_BYTES
        return max(1, min(self._most, self._batch_bytes // mean))


# Shards of one reader take turns: the k-th shard read calls at phase frac(k * 0.618...) of the
# polling interval, so any number of shards is spread evenly (the golden-ratio sequence) and
# their batches do not queue behind each other's decode on the one event loop.
GOLDEN_FRACTION = 0.6180339887498949
# A call that ran late comes back to its turn by at most this share of the interval per call,
# so that no two calls of one shard are closer than (1 - LATE_SHARE) intervals.
LATE_SHARE = 0.05


class PollTurns:
    """The calling turns of the shards read by one reader, on one clock grid: shard k calls
    at epoch + (phase_k + n) * interval."""

    def __init__(self) -> None:
        self._shards = 0
        self._epoch: float | None = None

    def phase(self, now: float) -> float:
        """A new shard's phase (a fraction of the interval)."""
        if self._epoch is None:
            self._epoch = now
        phase = (self._shards * GOLDEN_FRACTION) % 1.0
        self._shards += 1
        return phase

    def _turn(
        self, phase: float, at: float, interval: float, rounding: Callable[[float], int]
    ) -> float:
        epoch = at if self._epoch is None else self._epoch
        return epoch + (phase + rounding((at - epoch) / interval - phase)) * interval

    def first_call(self, phase: float, now: float, interval: float) -> float:
        return self._turn(phase, now, interval, math.ceil)

    def next_call(self, phase: float, last_call: float, interval: float) -> float:
        """The turn after the last call's: never sooner than (1 - LATE_SHARE) intervals after
        it and never a turn skipped (a late call delays the next one, not the rate)."""
        # The turn the last call was for; one a hair early (timers may fire so) was on it.
        turn = self._turn(phase, last_call + interval * LATE_SHARE, interval, math.floor)
        return max(turn + interval, last_call + interval * (1 - LATE_SHARE))


class Pacing:
    """When one shard's next GetRecords call may go, and its Limit (one per read of a shard):
    `interval_s` after the last call, also after an error. With `turns` (Kinesis) a shard at
    the tip calls on its turn, one behind it as soon as the shard's call rate allows."""

    def __init__(self, interval_s: float, limit: RecordLimit, turns: PollTurns | None) -> None:
        self.interval_s = interval_s
        self._pause = interval_s
        self._limit = limit
        self._turns = turns
        self._last_call = 0.0
        self._next_call = 0.0
        self._phase = 0.0
        if turns is not None:
            self._phase = turns.phase(time.monotonic())
            self._next_call = turns.first_call(self._phase, time.monotonic(), interval_s)

    async def wait(self) -> int:
        """Waits for the next call's time; returns the call's Limit."""
        wait = self._next_call - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_call = time.monotonic()
        self._next_call = self._last_call + self._pause  # the call rate, also after an error
        return self._limit.next()

    def saw(self, body: dict[str, Any], records: list[RawRecord]) -> None:
        """A successful call's response body and its records."""
        self._limit.saw(records)
        if self._turns is None:
            return
        # Behind the tip: read again as soon as the shard's call rate allows, also after an
        # empty batch (Kinesis returns those across sparse history while still behind).
        behind = (body.get("MillisBehindLatest") or 0) > 0
        self._pause = MIN_POLL_INTERVAL_S if behind else self.interval_s
        # At the tip, on the shard's own turn (it waits at most one interval once).
        self._next_call = (
            self._last_call + self._pause
            if behind
            else self._turns.next_call(self._phase, self._last_call, self._pause)
        )


class PollingReader:
    """Reads a Kinesis shard with GetShardIterator and GetRecords, retrying what can be retried.
    `client` is an aiobotocore Kinesis client on which `install_lean_get_records` was called (it
    also works without, just slower). DynamoDBStreamsReader reuses the loop: the names below,
    the stream arguments, pacing, decode and children at shard end are what it changes."""

    _gone = "shard"  # ShardGoneError's message: "<_gone> <shard id>: <error>"
    _events = ""  # the prefix of the retry log events
    _refresh_codes = frozenset({"ExpiredIteratorException"})  # GetRecords: get a new iterator
    # When set, GetShardIterator's TrimmedDataAccessException (a position older than the stream
    # keeps: the data is gone) is logged so and the shard read from TRIM_HORIZON.
    _trimmed_event: str | None = None
    _stamps_read_at = True  # ReadBatch.read_at, for the added latency

    def __init__(
        self,
        client: Any,
        stream_arn: str,
        options: PollingOptions | None = None,
        stream_name: str | None = None,
    ) -> None:
        """`stream_name`, when given, names the stream in the calls instead of its ARN (same
        account only; some emulators mishandle ARN-addressed GetRecords)."""
        self._client = client
        self._stream = {"StreamName": stream_name} if stream_name else {"StreamARN": stream_arn}
        self._options = options or PollingOptions()
        self._turns = PollTurns()
        self.throttled = 0
        self.iterator_refreshes = 0

    def _pacing(self) -> Pacing:
        limit = RecordLimit(self._options.limit, self._options.batch_bytes)
        return Pacing(self._options.interval_s, limit, self._turns)

    def _records(self, body: dict[str, Any]) -> list[RawRecord]:
        return kinesis_records(body.get("Records") or [])

    async def _children(self, shard_id: str, body: dict[str, Any]) -> tuple[str, ...]:
        return child_shard_ids(body)

    def _iterator_args(self, start: StartPosition) -> dict[str, object]:
        return start.iterator_args()

    async def _iterator(self, shard_id: str, start: StartPosition) -> str:
        args = {**self._stream, "ShardId": shard_id, **self._iterator_args(start)}
        backoff = Backoff(base_s=0.2, cap_s=5.0)
        while True:
            try:
                return str((await self._client.get_shard_iterator(**args))["ShardIterator"])
            except ClientError as error:
                code = error_code(error)
                if code == "ResourceNotFoundException":
                    raise ShardGoneError(f"{self._gone} {shard_id}: {error}") from error
                if code == "TrimmedDataAccessException" and self._trimmed_event:
                    log.warning(self._trimmed_event, shard_id=shard_id)
                    horizon = self._iterator_args(StartPosition.trim_horizon())
                    args = {**self._stream, "ShardId": shard_id, **horizon}
                    continue
                if not is_retryable(error):
                    raise
                self.throttled += 1
            except TRANSIENT_NETWORK_ERRORS as error:
                log.warning(
                    f"{self._events}get_shard_iterator.retry", shard_id=shard_id, error=str(error)
                )
            await backoff.sleep()

    async def read(self, shard_id: str, start: StartPosition) -> AsyncGenerator[ReadBatch, None]:
        iterator = await self._iterator(shard_id, start)
        resume_after: str | None = None
        pacing = self._pacing()
        backoff = Backoff(base_s=pacing.interval_s, cap_s=10.0)
        while True:
            limit = await pacing.wait()
            try:
                response = await self._client.get_records(ShardIterator=iterator, Limit=limit)
            except ClientError as error:
                code = error_code(error)
                if code in self._refresh_codes:
                    # Iterators live 5 minutes; resume exactly after the last record read.
                    self.iterator_refreshes += 1
                    restart = StartPosition.after(resume_after) if resume_after else start
                    iterator = await self._iterator(shard_id, restart)
                    continue
                if code == "ResourceNotFoundException":
                    raise ShardGoneError(f"{self._gone} {shard_id}: {error}") from error
                if is_retryable(error):
                    self.throttled += 1
                    await backoff.sleep()
                    continue
                raise
            except TRANSIENT_NETWORK_ERRORS as error:
                log.warning(f"{self._events}get_records.retry", shard_id=shard_id, error=str(error))
                await backoff.sleep()
                continue
            backoff.reset()
            read_at = time.monotonic()  # off the socket: the decode below counts as added latency
            body = lean_body(response)
            records = self._records(body)
            pacing.saw(body, records)
            if records:
                resume_after = records[-1].sequence_number
            next_iterator = body.get("NextShardIterator")
            yield ReadBatch(
                shard_id=shard_id,
                records=records,
                millis_behind_latest=body.get("MillisBehindLatest"),
                resume_after=resume_after,
                child_shard_ids=None if next_iterator else await self._children(shard_id, body),
                read_at=read_at if self._stamps_read_at else None,
            )
            if not next_iterator:
                return
            iterator = next_iterator
