"""In-memory sinks, DLQ and checkpointer for unit tests of the pipeline's logic."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from consumer.pipeline.dlq import ParkedRecord
from consumer.pipeline.sink import Failures, SinkError
from consumer.records import ChangeEvent


@dataclass
class MemorySink:
    """Keeps the newest change per key; `fail` decides, per call, what goes wrong."""

    name: str = "memory"
    buffered: bool = False
    fail: Callable[[Sequence[ChangeEvent], int], Failures | BaseException | None] = (
        lambda events, call: None
    )
    state: dict[str, ChangeEvent] = field(default_factory=dict)
    pending: list[ChangeEvent] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    calls: int = 0
    flushes: int = 0
    flush_errors: list[BaseException] = field(default_factory=list)
    flush_due: bool = False

    def _apply(self, event: ChangeEvent) -> None:
        key = str(event.keys.wire)
        current = self.state.get(key)
        if current is None or _shard_order(event) > _shard_order(current):
            self.state[key] = event
        self.applied.append(event.event_id)

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        self.calls += 1
        outcome = self.fail(events, self.calls)
        if isinstance(outcome, BaseException):
            raise outcome
        failures = outcome or {}
        for index, event in enumerate(events):
            if index in failures:
                continue
            if self.buffered:
                self.pending.append(event)
            else:
                self._apply(event)
        return failures

    def wants_flush(self, now_monotonic: float) -> bool:
        return self.flush_due

    async def flush(self) -> None:
        if self.flush_errors:
            raise self.flush_errors.pop(0)
        for event in self.pending:
            self._apply(event)
        self.pending.clear()
        self.flushes += 1

    async def aclose(self) -> None:
        return None


@dataclass
class MemoryDlq:
    parked: list[ParkedRecord] = field(default_factory=list)
    outages: int = 0

    async def park(self, records: Sequence[ParkedRecord]) -> None:
        if self.outages:
            self.outages -= 1
            raise RuntimeError("DLQ unreachable")
        self.parked.extend(records)


@dataclass
class MemoryCheckpointer:
    checkpoints: list[tuple[str, int]] = field(default_factory=list)
    shard_end: bool = False
    children: tuple[str, ...] = ()

    async def checkpoint(self, sequence_number: str, sub_sequence_number: int = 0) -> None:
        self.checkpoints.append((sequence_number, sub_sequence_number))

    async def checkpoint_shard_end(self, child_shard_ids: Iterable[str] = ()) -> None:
        self.shard_end = True
        self.children = tuple(child_shard_ids)


def sink_error(retryable: bool) -> SinkError:
    return SinkError("rejected" if not retryable else "try again", retryable=retryable)


def _shard_order(event: ChangeEvent) -> tuple[int, tuple[int, int]]:
    """(version, sequence key): the newer of two changes by time, then shard order."""
    return event.created_at_us, event.position.sequence_key
