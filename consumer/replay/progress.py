"""Progress of a replay: the math (pure) and its two renderings, a live line on a terminal
and a log line every `log_interval_s` otherwise (docs/replay.md, "Progress"). The archive
replay and the dry runs send their states with `reporting_states`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TextIO

import structlog

from consumer.replay.status import ReplayState, ShardStatus, settlement
from consumer.replay.window import clock_text

log = structlog.get_logger(__name__)

StateListener = Callable[[ReplayState], object]

RATE_WINDOW_S = 10.0
STATE_INTERVAL_S = 1.0  # how often `reporting_states` sends a state
_GLYPHS = " ▁▂▃▄▅▆▇█"
_SHOW_PERCENT_UP_TO = 4  # shards; more are drawn one glyph each


def shard_share(status: ShardStatus, settled: bool, start_ms: int, to_ms: int) -> float:
    """The share of [start, --to] one shard has covered, 0..1 (1 only once settled)."""
    if settled:
        return 1.0
    if status.at_ms is None:
        return 0.0
    span = to_ms - start_ms
    if span <= 0:
        return 0.99
    return min(0.99, max(0.0, (status.at_ms - start_ms) / span))


def eta_s(elapsed_s: float, share: float) -> float | None:
    """Time left, extrapolating the elapsed time by the share still to do (None: unknown)."""
    if share >= 1.0:
        return 0.0
    if share < 0.005 or elapsed_s <= 0:
        return None
    return elapsed_s * (1.0 - share) / share


@dataclass
class RateMeter:
    """Records per second over the last `window_s`, from cumulative counts."""

    window_s: float = RATE_WINDOW_S
    _samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, records: int) -> float:
        samples = self._samples
        samples.append((now, records))
        while len(samples) > 2 and now - samples[1][0] >= self.window_s:
            samples.popleft()
        first_time, first_records = samples[0]
        if now - first_time <= 0:
            return 0.0
        return max(0.0, (records - first_records) / (now - first_time))


@dataclass(frozen=True)
class ProgressSnapshot:
    """What both renderings show."""

    records: int
    share: float
    shard_shares: tuple[tuple[str, float], ...]
    settled: int
    rate: float
    eta_s: float | None

    @property
    def shards(self) -> int:
        return len(self.shard_shares)


def snapshot(
    state: ReplayState, start_ms: int, to_ms: int, elapsed_s: float, rate: float
) -> ProgressSnapshot:
    verdicts = settlement(state, to_ms)
    shares = tuple(
        (s.shard_id, shard_share(s, verdicts.get(s.shard_id) is not None, start_ms, to_ms))
        for s in state.shards
    )
    overall = sum(share for _, share in shares) / len(shares) if shares else 0.0
    return ProgressSnapshot(
        records=state.records,
        share=overall,
        shard_shares=shares,
        settled=sum(1 for verdict in verdicts.values() if verdict is not None),
        rate=rate,
        eta_s=eta_s(elapsed_s, overall),
    )


def short_shard(shard_id: str) -> str:
    """`shardId-000000000012` -> `12`."""
    tail = shard_id.rsplit("-", 1)[-1]
    if not tail.isdigit():
        return shard_id
    return tail.lstrip("0") or "0"


def progress_line(progress: ProgressSnapshot, width: int = 100) -> str:
    """One terminal line: records, a bar, per-shard shares, rate and ETA."""
    filled = round(progress.share * 16)
    bar = "#" * filled + "-" * (16 - filled)
    if progress.shards <= _SHOW_PERCENT_UP_TO:
        shards = " ".join(
            f"{short_shard(shard)}:{share * 100:.0f}%" for shard, share in progress.shard_shares
        )
    else:
        shards = "".join(
            _GLYPHS[round(share * (len(_GLYPHS) - 1))] for _, share in progress.shard_shares
        )
    eta = clock_text(progress.eta_s) if progress.eta_s is not None else "--:--:--"
    line = (
        f"replay [{bar}] {progress.share * 100:5.1f}%  {progress.records:,} records  "
        f"{progress.rate:,.0f}/s  ETA {eta}  shards {progress.settled}/{progress.shards} "
        f"[{shards}]"
    )
    return line[: max(20, width - 1)]


def progress_fields(progress: ProgressSnapshot) -> dict[str, object]:
    """The same as structured log fields."""
    return {
        "records": progress.records,
        "done_pct": round(progress.share * 100, 1),
        "rate_per_s": round(progress.rate, 1),
        "eta_s": round(progress.eta_s) if progress.eta_s is not None else None,
        "shards_settled": progress.settled,
        "shards": progress.shards,
        "shard_pct": {shard: round(share * 100, 1) for shard, share in progress.shard_shares},
    }


@dataclass
class ProgressReporter:
    """Renders replay states as they come, per `mode`: "bar" (a line rewritten on `out`),
    "log" (every `log_interval_s`) or "none"; shares are of the range `start_ms`-`to_ms`."""

    mode: str
    start_ms: int
    to_ms: int
    out: TextIO = field(default_factory=lambda: sys.stdout)
    log_interval_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    width: int = 100
    _last_log: float = float("-inf")
    _rate: RateMeter = field(default_factory=RateMeter)
    _drawn: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("bar", "log", "none"):
            raise ValueError(f"progress mode must be bar, log or none, got {self.mode!r}")
        self._started = self.clock()

    def update(self, state: ReplayState) -> ProgressSnapshot:
        now = self.clock()
        rate = self._rate.add(now, state.records)
        current = snapshot(state, self.start_ms, self.to_ms, now - self._started, rate)
        if self.mode == "bar":
            self.out.write("\r" + progress_line(current, self.width) + "\x1b[K")
            self.out.flush()
            self._drawn = True
        elif self.mode == "log" and now - self._last_log >= self.log_interval_s:
            self._last_log = now
            log.info("replay.progress", **progress_fields(current))
        return current

    def finish(self) -> None:
        """Ends the live line (so later output starts on a fresh line)."""
        if self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = False


@asynccontextmanager
async def reporting_states(
    on_state: StateListener, state: Callable[[], ReplayState], stop: asyncio.Event
) -> AsyncIterator[None]:
    """Sends `state()` to `on_state` every STATE_INTERVAL_S while the body runs, until `stop`
    is set."""

    async def tick() -> None:
        while not stop.is_set():
            on_state(state())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STATE_INTERVAL_S)

    ticker = asyncio.create_task(tick())
    try:
        yield
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
