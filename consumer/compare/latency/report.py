"""The result of a latency run, and how observations become it.

Per probe and sink, in milliseconds:
- end to end = apply time - probe write time (both read from this process's clock);
- for the Kinesis modes, upstream = Kinesis arrival (ApproximateArrivalTimestamp, ms) - write
  time: DynamoDB's Kinesis destination on AWS, the destination bridge locally; and the
  consumer's share = apply time - Kinesis arrival;
- for streams mode the worker reads the table's DynamoDB stream directly, so the consumer's
  share is the end-to-end time (the stream's ApproximateCreationDateTime has one-second
  resolution, too coarse to split off DynamoDB's part);
- in every mode, consumer added (`consumer_added_ms`) = apply - the moment the consumer read
  the batch holding the probe off the socket (monotonic clock): what the service itself adds,
  without the source's delivery cadence that the consumer share still includes (a polling
  interval, kinesis-mock's once-a-second EFO events).
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
