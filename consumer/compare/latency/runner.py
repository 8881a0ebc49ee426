"""All modes of one latency run, one after another, in one environment.

Modes run in sequence (not at once) so they do not compete for the same CPU and emulators;
each gets its own worker, application (lease table) and, locally, its own tables and stream.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from consumer.compare.latency.environment import MODES, Environment, Mode
from consumer.compare.latency.percentiles import PERCENTILE_METHOD
from consumer.compare.latency.report import LatencyReport, ModeLatency
from consumer.compare.latency.session import SessionOptions, measure_mode
from consumer.compare.latency.shards import open_shard_ids
from consumer.compare.latency.writer import ProbeWriter, WrittenProbe

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    """Which modes, and how each is measured (see SessionOptions)."""

    modes: tuple[Mode, ...] = MODES
    session: SessionOptions = field(default_factory=SessionOptions)

    def __post_init__(self) -> None:
        if not self.modes:
            raise ValueError("give at least one mode")
        if len(set(self.modes)) != len(self.modes):
            raise ValueError(f"a mode is given twice: {', '.join(self.modes)}")


def _quiet(_: str) -> None:
    return None


def measure_latency(
    environment: Environment,
    options: RunOptions,
    run_id: str | None = None,
    progress: Progress = _quiet,
) -> LatencyReport:
    """Measures every mode of `options` in `environment`, then cleans up (also on failure).

    Raises LatencyError when a mode cannot be set up and ProbeWriteError when probes cannot
    be written; a mode that runs but misses probes is reported in its result instead.
    """
    run = run_id or uuid.uuid4().hex[:8]
    session = options.session
    results: list[ModeLatency] = []
    written: list[WrittenProbe] = []
    try:
        for mode in options.modes:
            target = environment.prepare(mode, run)
            shards = open_shard_ids(target.settings)
            writer = ProbeWriter(target.dynamodb, target.table, target.keys)
            progress(
                f"{mode}: warming up, then {session.probes} probes at {session.rate_per_s:g}/s"
            )
            try:
                with environment.feeding(target):
                    result = asyncio.run(measure_mode(target, writer, run, session, shards))
            finally:
                written.extend(writer.written)
            progress(f"{mode}: {'done' if result.ok else 'done with problems'}")
            results.append(result)
    finally:
        cleanup = environment.cleanup(sorted(written, key=lambda probe: probe.written_us))
    return LatencyReport(
        environment=environment.name,
        run_id=run,
        probes_per_mode=session.probes,
        rate_per_s=session.rate_per_s,
        percentile_method=PERCENTILE_METHOD,
        notes=environment.notes + tuple(cleanup),
        modes=tuple(results),
    )
