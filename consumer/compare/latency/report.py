"""The result of a latency run, and how observations become it (docs/latency.md says what each
share measures). Per probe and sink, in ms: end to end = apply - write; for the Kinesis modes
upstream = Kinesis arrival - write and consumer share = apply - arrival (streams mode: the
stream's 1 s timestamps are too coarse, so the consumer share is the end to end); consumer
added = apply - the consumer's read of the probe's batch (monotonic clock), in every mode.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from consumer.compare.latency.observer import Applied
from consumer.compare.latency.percentiles import Summary, summarize


class ConsumerBasis(enum.StrEnum):
    """What the consumer's share is measured from."""

    KINESIS_ARRIVAL = "kinesis-arrival"
    WRITE = "write"


@dataclass(frozen=True)
class SinkLatency:
    """One sink in one mode: how many probes it applied, and the latency summaries (None
    when it applied none; `upstream` is None in streams mode; `consumer_added` is None when
    no apply said when its batch was read)."""

    sink: str
    applied: int
    missing: int
    end_to_end: Summary | None
    consumer: Summary | None
    upstream: Summary | None
    consumer_added: Summary | None = None


@dataclass(frozen=True)
class ModeLatency:
    """One read mode: probes written, per-sink latencies, and anything that went wrong."""

    mode: str
    probes: int
    consumer_basis: ConsumerBasis
    sinks: tuple[SinkLatency, ...]
    worker_exit: int
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and self.worker_exit == 0
            and bool(self.sinks)
            and all(sink.missing == 0 for sink in self.sinks)
        )


@dataclass(frozen=True)
class LatencyReport:
    """A whole run: where it ran, how, the caveats that apply, and every mode's result."""

    environment: str
    run_id: str
    probes_per_mode: int
    rate_per_s: float
    percentile_method: str
    notes: tuple[str, ...]
    modes: tuple[ModeLatency, ...]

    @property
    def ok(self) -> bool:
        return bool(self.modes) and all(mode.ok for mode in self.modes)


def sink_latency(
    sink: str, applies: Mapping[int, Applied], written: int, basis: ConsumerBasis
) -> SinkLatency:
    """Summarises the applies of probes 0..written-1 by one sink."""
    end_to_end: list[float] = []
    consumer: list[float] = []
    upstream: list[float] = []
    added: list[float] = []
    for seq in range(written):
        applied = applies.get(seq)
        if applied is None:
            continue
        total_ms = (applied.applied_us - applied.stamp.written_us) / 1000
        end_to_end.append(total_ms)
        if applied.read_to_apply_ms is not None:
            added.append(applied.read_to_apply_ms)
        if basis is ConsumerBasis.KINESIS_ARRIVAL and applied.arrival_ms is not None:
            consumer.append(applied.applied_us / 1000 - applied.arrival_ms)
            upstream.append(applied.arrival_ms - applied.stamp.written_us / 1000)
        else:
            consumer.append(total_ms)
    return SinkLatency(
        sink=sink,
        applied=len(end_to_end),
        missing=written - len(end_to_end),
        end_to_end=summarize(end_to_end),
        consumer=summarize(consumer),
        upstream=summarize(upstream),
        consumer_added=summarize(added),
    )
