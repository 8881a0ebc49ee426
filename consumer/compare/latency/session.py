"""One mode's measurement: run a worker in-process, warm up, write probes, wait, stop.

Warm-up probes go until every sink applied one from each open shard (readers start at LATEST:
a measured probe must not be lost to a reader that is not reading yet, nor wait on start-up);
then the probes at their rate, and a wait until every sink applied them all. The worker is
stopped the way SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from consumer.compare.latency.environment import ModeTarget
from consumer.compare.latency.observer import ProbeObserver
from consumer.compare.latency.probes import Phase, ProbeTag
from consumer.compare.latency.report import ConsumerBasis, ModeLatency, sink_latency
from consumer.compare.latency.writer import ProbeWriter
from consumer.service.runtime import serve


@dataclass(frozen=True)
class SessionOptions:
    """How one mode is measured: `probes` at `rate_per_s`; a warm-up probe every
    `warmup_interval_s` for at most `warmup_timeout_s`; at most `settle_timeout_s` of waiting
    for the last applies after the last write."""

    probes: int = 50
    rate_per_s: float = 20.0
    warmup_timeout_s: float = 60.0
    warmup_interval_s: float = 0.25
    settle_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.probes < 1:
            raise ValueError(f"probes must be at least 1, got {self.probes}")
        if not 0 < self.rate_per_s <= 1000:
            raise ValueError(f"rate must be in (0, 1000] probes/s, got {self.rate_per_s}")


async def _warm_up(
    writer: ProbeWriter,
    observer: ProbeObserver,
    worker: asyncio.Task[int],
    tag: ProbeTag,
    shards: frozenset[str],
    options: SessionOptions,
) -> str | None:
    """None once every sink applied a warm-up probe from each of `shards`; else what went
    wrong. Probes land in shards by their key's hash: each one has a new key."""
    deadline = time.monotonic() + options.warmup_timeout_s
    seq = 0
    while time.monotonic() < deadline:
        if worker.done():
            return f"the worker stopped during the warm-up (exit status {worker.result()})"
        await asyncio.to_thread(writer.put, tag, seq)
        seq += 1
        done = await observer.wait_until(
            lambda: observer.covered(str(tag), shards) or worker.done(), options.warmup_interval_s
        )
        if done and observer.covered(str(tag), shards):
            return None
    sinks = ", ".join(observer.sinks) or "none built yet"
    return (
        f"warm-up probes did not reach every sink from each of the {len(shards)} open shards "
        f"within {options.warmup_timeout_s:g} s (sinks: {sinks}); is the stream fed by the "
        "table, and do pipeline filters pass the probes?"
    )


async def measure_mode(
    target: ModeTarget,
    writer: ProbeWriter,
    run_id: str,
    options: SessionOptions,
    shards: frozenset[str] = frozenset(),
) -> ModeLatency:
    """Measures one mode whose stream has the open `shards` (none given: the warm-up waits for
    any one shard); returns its result (problems included) rather than raising, except for
    errors writing probes (ProbeWriteError) and bugs."""
    observer = ProbeObserver()
    stop = asyncio.Event()
    worker = asyncio.create_task(
        serve(target.settings, stop, routes_hook=observer.wrap_routes),
        name=f"latency-worker-{target.mode}",
    )
    measured = ProbeTag(run_id, target.mode, Phase.MEASURE)
    problems: list[str] = []
    written = 0
    try:
        warmup = ProbeTag(run_id, target.mode, Phase.WARMUP)
        problem = await _warm_up(writer, observer, worker, warmup, shards, options)
        if problem is not None:
            problems.append(problem)
        else:
            probes = await asyncio.to_thread(
                writer.write_series, measured, options.probes, options.rate_per_s
            )
            written = len(probes)
            settled = await observer.wait_until(
                lambda: observer.complete(str(measured), written) or worker.done(),
                options.settle_timeout_s,
            )
            if not (settled and observer.complete(str(measured), written)):
                problems.append(
                    f"not every probe was applied by every sink within "
                    f"{options.settle_timeout_s:g} s of the last write"
                )
    finally:
        stop.set()
        exit_code = await worker
    if exit_code != 0 and not problems:
        problems.append(f"the worker exited with status {exit_code}")
    basis = ConsumerBasis.WRITE if target.mode == "streams" else ConsumerBasis.KINESIS_ARRIVAL
    return ModeLatency(
        mode=target.mode,
        probes=written,
        consumer_basis=basis,
        sinks=tuple(
            sink_latency(sink, observer.applied(str(measured), sink), written, basis)
            for sink in observer.sinks
        ),
        worker_exit=exit_code,
        problems=tuple(problems),
    )
