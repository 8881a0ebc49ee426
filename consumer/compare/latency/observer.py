"""Recording when each sink applied each probe (docs/latency.md, "What is measured, exactly").

`ProbeObserver.wrap_routes` is a worker routes hook: it wraps every route's sink in a
`MeasuringSink`, which reports each probe it applied, at the wall time when `write` returned
(a sink that is not buffered) or when the next `flush` returned (a buffered one: durable only
then), with the consumer's own part since its batch was read (`BATCH_READ_AT`, monotonic).
The first apply of a probe per sink counts; a duplicate delivery is ignored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import cast

from consumer.compare.latency.probes import ProbeStamp, WallClockUs, read_probe, wall_us
from consumer.pipeline.added_latency import BATCH_READ_AT
from consumer.pipeline.processor import Route
from consumer.pipeline.sink import Failures, FlushingSink, Sink
from consumer.records import ChangeEvent


@dataclass(frozen=True, slots=True)
class Applied:
    """One sink's first apply of one probe.

    `shard_id`: the shard it was read from; `arrival_ms`: the Kinesis ApproximateArrivalTimestamp
    of the record that carried it (None when read from a DynamoDB stream); `read_to_apply_ms`:
    the consumer's own part, from its batch's read to this apply (None when the pipeline did
    not say when it was read).
    """

    sink: str
    stamp: ProbeStamp
    applied_us: int
    shard_id: str
    arrival_ms: int | None
    read_to_apply_ms: float | None = None


class ProbeObserver:
    """Collects probe applies. Used from the worker's event loop only (not thread-safe)."""

    def __init__(
        self, clock_us: WallClockUs = wall_us, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock_us = clock_us
        self.monotonic = monotonic  # the clock a batch's read time is taken from
        self.sinks: list[str] = []  # the sinks the worker has built routes for, in route order
        self._applied: dict[tuple[str, str], dict[int, Applied]] = {}

    def wrap_routes(self, shard_id: str, routes: list[Route]) -> list[Route]:
        """A routes hook for `serve`: the same routes, each sink wrapped in a MeasuringSink."""
        for route in routes:
            if route.sink.name not in self.sinks:
                self.sinks.append(route.sink.name)
        return [dataclasses.replace(r, sink=MeasuringSink(r.sink, self)) for r in routes]

    def note(
        self,
        sink: str,
        stamp: ProbeStamp,
        event: ChangeEvent,
        applied_us: int,
        read_to_apply_ms: float | None = None,
    ) -> None:
        """Sink `sink` made probe `stamp` (carried by `event`) durable at `applied_us`,
        `read_to_apply_ms` after its batch was read."""
        seen = self._applied.setdefault((stamp.tag, sink), {})
        if stamp.seq not in seen:
            shard, arrival_ms = event.position.shard_id, event.position.arrival_ms
            seen[stamp.seq] = Applied(sink, stamp, applied_us, shard, arrival_ms, read_to_apply_ms)

    def applied(self, tag: str, sink: str) -> Mapping[int, Applied]:
        """The probes of `tag` that `sink` applied, by probe number."""
        return self._applied.get((tag, sink), {})

    def complete(self, tag: str, count: int | None = None) -> bool:
        """True when every sink has applied probes 0..count-1 of `tag` (with no count: at
        least one of them). False before the worker has built any route."""
        if not self.sinks:
            return False
        if count is None:
            return all(self.applied(tag, sink) for sink in self.sinks)
        wanted = set(range(count))
        return all(self.applied(tag, sink).keys() >= wanted for sink in self.sinks)

    def covered(self, tag: str, shards: AbstractSet[str]) -> bool:
        """True when every sink has applied a probe of `tag` read from each of `shards` (with
        no shards given: any probe of `tag`). False before the worker has built any route."""
        if not shards:
            return self.complete(tag)
        if not self.sinks:
            return False
        return all(
            shards <= {applied.shard_id for applied in self.applied(tag, sink).values()}
            for sink in self.sinks
        )

    async def wait_until(
        self, done: Callable[[], bool], timeout_s: float, poll_s: float = 0.02
    ) -> bool:
        """Waits until `done()` is true (returns True) or `timeout_s` passed (returns False).
        Polling does not affect the measurement: apply times are taken in the sinks."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(poll_s)
        return True


class MeasuringSink:
    """A Sink that delegates everything to `inner` and reports probes to the observer.

    It changes nothing about the sink's behaviour or failures; records reported as failed by
    `write` are not counted as applied (the pipeline retries them; the retry is counted).
    """

    def __init__(self, inner: Sink, observer: ProbeObserver) -> None:
        self._inner = inner
        self._observer = observer
        # Written, durable at the next flush: (probe, event, when its batch was read).
        self._pending: list[tuple[ProbeStamp, ChangeEvent, float | None]] = []

    def _read_to_apply_ms(self, read_at: float | None) -> float | None:
        return None if read_at is None else (self._observer.monotonic() - read_at) * 1000

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def buffered(self) -> bool:
        return self._inner.buffered

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        failures = await self._inner.write(events)
        applied_us = self._observer.clock_us()
        read_at = BATCH_READ_AT.get()
        consumer_ms = self._read_to_apply_ms(read_at)
        for index, event in enumerate(events):
            if index in failures:
                continue
            stamp = read_probe(event)
            if stamp is None:
                continue
            if self._inner.buffered:
                self._pending.append((stamp, event, read_at))
            else:
                self._observer.note(self.name, stamp, event, applied_us, consumer_ms)
        return failures

    def wants_flush(self, now_monotonic: float) -> bool:
        return cast(FlushingSink, self._inner).wants_flush(now_monotonic)  # only if buffered

    async def flush(self) -> None:
        await cast(FlushingSink, self._inner).flush()
        applied_us = self._observer.clock_us()
        for stamp, event, read_at in self._pending:
            consumer_ms = self._read_to_apply_ms(read_at)
            self._observer.note(self.name, stamp, event, applied_us, consumer_ms)
        self._pending.clear()

    async def aclose(self) -> None:
        await self._inner.aclose()
