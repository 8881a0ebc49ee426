"""Where the consumer's added latency goes: the bench's service child, with each stage timed.

    python tests/bench/latency_breakdown.py <the arguments of e2e_consumers.py>

Runs `e2e_consumers.py` in this process with the shard loop's hand-over and the pipeline's
steps wrapped (benchmark tooling only; nothing of the service changes), and prints, after the
warm-up, one line per stage: `stage <name> <p50 ms> <p99 ms>`, weighted by records like the
added latency itself:
- read_to_handover: the reader's stamp (the response or event off the socket) to the batch
  handed to the shard loop: the parse of the response, base64 of the payloads;
- handover_to_process: waiting in the read-ahead queue until the pipeline takes the batch;
- decode: the pipeline's decode of the batch into change events;
- decode_to_sink: the delivery tasks starting (other shards' work runs in between);
- sink: the sink's apply;
- read_to_applied: the whole (the figure `compare latency` reports).
Also `batch_records <p50> <p99>`, `decode_ms_per_batch <p50> <p99>` (unweighted),
`gc_ms_generation_<g> <count> <total ms> <max ms>` for collections during the measured part, and
`loop_lag_ms <p50> <p99> <max>`: how late a 1 ms ticker on the event loop ran.
With BENCH_POLL_TURNS=0 every shard polls as before turns (polling.py's PollTurns): all at the
same moments, each an interval after its last call, for a before/after under the same load.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consumer.pipeline.processor import ShardPipeline
from consumer.service import shard_task
from consumer.sources.polling import PollTurns
from tests.bench import e2e_consumers

STAGES = (
    "read_to_handover",
    "handover_to_process",
    "decode",
    "decode_to_sink",
    "sink",
    "read_to_applied",
)


@dataclass
class Breakdown:
    warmup_records: int
    records: int = 0
    handed_over: dict[int, float] = field(default_factory=dict)
    marks: dict[int, dict[str, float]] = field(default_factory=dict)
    samples: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    decode_s: list[float] = field(default_factory=list)
    batch_records: list[int] = field(default_factory=list)
    gc_pauses: dict[int, list[float]] = field(default_factory=dict)
    loop_lag: list[float] = field(default_factory=list)

    @property
    def measuring(self) -> bool:
        return self.records >= self.warmup_records

    def add(self, stage: str, seconds: float, records: int) -> None:
        if self.measuring:
            self.samples.setdefault(stage, []).append((seconds, records))


def weighted_percentile(samples: Sequence[tuple[float, int]], q: float) -> float:
    ordered = sorted(samples)
    total = sum(weight for _, weight in ordered)
    rank = q / 100 * total
    seen = 0
    for value, weight in ordered:
        seen += weight
        if seen >= rank:
            return value
    return ordered[-1][0]


def install(breakdown: Breakdown) -> None:
    async def stamped(
        batches: AsyncIterator[Any], clock: Callable[[], float]
    ) -> AsyncIterator[Any]:
        async for batch in batches:
            handed = clock()
            # The reader's own stamp (the socket read) when it sets one, else the hand-over.
            if batch.read_at is None:
                batch = replace(batch, read_at=handed)
            breakdown.handed_over[id(batch)] = handed
            yield batch

    shard_task.stamped = stamped  # type: ignore[assignment]

    original_process = ShardPipeline.process
    original_decode = ShardPipeline._decode
    original_deliver = ShardPipeline._deliver_timed

    async def process(self: ShardPipeline, batch: Any) -> None:
        marks = breakdown.marks.setdefault(id(batch), {})
        marks["process"] = time.monotonic()
        try:
            await original_process(self, batch)
        finally:
            breakdown.records += len(batch.records)
            breakdown.marks.pop(id(batch), None)
            breakdown.handed_over.pop(id(batch), None)

    def decode(self: ShardPipeline, batch: Any) -> Any:
        started = time.monotonic()
        result = original_decode(self, batch)
        done = time.monotonic()
        breakdown.marks.setdefault(id(batch), {})["decoded"] = done
        if breakdown.measuring and batch.records:
            breakdown.decode_s.append(done - started)
            breakdown.batch_records.append(len(batch.records))
        n = len(batch.records)
        if batch.read_at is not None and n:
            handed = breakdown.handed_over.get(id(batch), batch.read_at)
            breakdown.add("read_to_handover", handed - batch.read_at, n)
            processed = breakdown.marks[id(batch)].get("process", handed)
            breakdown.add("handover_to_process", processed - handed, n)
            breakdown.add("decode", done - started, n)
        return result

    async def deliver(self: ShardPipeline, route: Any, events: Any, batch: Any) -> None:
        started = time.monotonic()
        decoded = breakdown.marks.get(id(batch), {}).get("decoded", started)
        await original_deliver(self, route, events, batch)
        done = time.monotonic()
        if batch.read_at is not None and events and route.sink.name != "collector":
            breakdown.add("decode_to_sink", started - decoded, len(events))
            breakdown.add("sink", done - started, len(events))
            breakdown.add("read_to_applied", done - batch.read_at, len(events))

    ShardPipeline.process = process  # type: ignore[method-assign]
    ShardPipeline._decode = decode  # type: ignore[method-assign]
    ShardPipeline._deliver_timed = deliver  # type: ignore[method-assign]

    gc_started: list[float] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[:] = [time.perf_counter()]
        elif gc_started and breakdown.measuring:
            pause = time.perf_counter() - gc_started[0]
            breakdown.gc_pauses.setdefault(info["generation"], []).append(pause)

    gc.callbacks.append(on_gc)


async def tick(breakdown: Breakdown) -> None:
    period = 0.001
    while True:
        before = time.monotonic()
        await asyncio.sleep(period)
        if breakdown.measuring:
            breakdown.loop_lag.append(time.monotonic() - before - period)


def report(breakdown: Breakdown) -> None:
    for stage in STAGES:
        samples = breakdown.samples.get(stage)
        if samples:
            p50, p99 = (weighted_percentile(samples, q) * 1000 for q in (50, 99))
            print(f"stage {stage} {p50:.2f} {p99:.2f}")
    if breakdown.decode_s:
        decode = [(s, 1) for s in breakdown.decode_s]
        sizes = [(float(n), 1) for n in breakdown.batch_records]
        print(
            f"decode_ms_per_batch {weighted_percentile(decode, 50) * 1000:.2f} "
            f"{weighted_percentile(decode, 99) * 1000:.2f}"
        )
        print(
            f"batch_records {weighted_percentile(sizes, 50):.0f} "
            f"{weighted_percentile(sizes, 99):.0f}"
        )
    for generation, pauses in sorted(breakdown.gc_pauses.items()):
        print(
            f"gc_ms_generation_{generation} {len(pauses)} {sum(pauses) * 1000:.1f} "
            f"{max(pauses) * 1000:.1f}"
        )
    if breakdown.loop_lag:
        lag = [(s, 1) for s in breakdown.loop_lag]
        print(
            f"loop_lag_ms {weighted_percentile(lag, 50) * 1000:.2f} "
            f"{weighted_percentile(lag, 99) * 1000:.2f} {max(breakdown.loop_lag) * 1000:.2f}"
        )


def without_turns() -> None:
    def first_call(self: PollTurns, phase: float, now: float, interval: float) -> float:
        return now

    def next_call(self: PollTurns, phase: float, last_call: float, interval: float) -> float:
        return last_call + interval

    PollTurns.first_call = first_call  # type: ignore[method-assign]
    PollTurns.next_call = next_call  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    breakdown = Breakdown(int(os.environ.get("BENCH_WARMUP_RECORDS", "0")))
    if os.environ.get("BENCH_POLL_TURNS") == "0":
        without_turns()
    install(breakdown)
    original_run = e2e_consumers.run_service

    async def run_service(*args: Any) -> float:
        ticker = asyncio.create_task(tick(breakdown))
        try:
            return await original_run(*args)
        finally:
            ticker.cancel()

    e2e_consumers.run_service = run_service  # type: ignore[assignment]
    e2e_consumers.main(argv)
    report(breakdown)


if __name__ == "__main__":
    main(sys.argv[1:])
