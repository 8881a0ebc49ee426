"""Backfill progress: a one-line bar on a terminal, log lines otherwise. Figures are the whole
snapshot's, from the lease table, so each process shows the same totals."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any, TextIO

import structlog

from consumer.snapshot.segments import SnapshotInfo, SnapshotLeases

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ProgressFigures:
    items: int
    size: int
    parts_done: int
    parts: int
    rate_items_s: float
    total_items: int | None

    @property
    def eta_s(self) -> float | None:
        if not self.total_items or self.rate_items_s <= 0:
            return None
        return max(0.0, (self.total_items - self.items) / self.rate_items_s)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def progress_line(figures: ProgressFigures) -> str:
    share = ""
    if figures.total_items:
        share = f" ({min(100.0, 100 * figures.items / figures.total_items):.0f}%)"
    return (
        f"{figures.items} items{share}, {figures.size / 1_000_000:.1f} MB, "
        f"{figures.parts_done}/{figures.parts} parts, {figures.rate_items_s:.0f} items/s, "
        f"ETA {_duration(figures.eta_s)}"
    )


class ProgressView:
    """A bar redrawn in place on a TTY; otherwise a log line every `log_interval_s`."""

    def __init__(
        self,
        out: TextIO = sys.stderr,
        tty: bool | None = None,
        log_interval_s: float = 10.0,
        label: str = "backfill",  # the command: "verify" reads with the same reader
    ) -> None:
        self._label = label
        self._out = out
        self._tty = out.isatty() if tty is None else tty
        self._log_interval_s = log_interval_s
        self._last_log = 0.0
        self._drawn = False

    @property
    def poll_s(self) -> float:
        """How often the figures are read (a Scan): 1 s for a bar, else the log interval."""
        return 1.0 if self._tty else self._log_interval_s

    def note(self, message: str) -> None:
        if self._tty:
            if self._drawn:
                self._out.write("\r\x1b[K")
                self._drawn = False
            print(f"{self._label}: {message}", file=self._out, flush=True)
        else:
            log.info(f"{self._label}.note", message=message)

    def update(self, figures: ProgressFigures) -> None:
        line = progress_line(figures)
        if self._tty:
            width = 24
            done = figures.items / figures.total_items if figures.total_items else 0.0
            filled = int(width * min(1.0, done))
            bar = "#" * filled + "-" * (width - filled)
            self._out.write(f"\r\x1b[K[{bar}] {line}")
            self._out.flush()
            self._drawn = True
            return
        now = time.monotonic()
        if now - self._last_log >= self._log_interval_s:
            self._last_log = now
            log.info(
                f"{self._label}.progress",
                items=figures.items,
                bytes=figures.size,
                parts_done=figures.parts_done,
                parts=figures.parts,
                items_per_s=round(figures.rate_items_s),
                eta_s=None if figures.eta_s is None else round(figures.eta_s),
            )

    def finish(self) -> None:
        if self._tty and self._drawn:
            self._out.write("\n")
            self._out.flush()
            self._drawn = False


async def show_progress(
    leases: SnapshotLeases, info: SnapshotInfo, total_items: int | None, view: ProgressView | None
) -> None:
    """Polls the lease table and feeds the view until cancelled."""
    if view is None:
        return
    started = time.monotonic()
    first: int | None = None
    while True:
        try:
            parts = await leases.parts(info.snapshot_id)
            items = sum(part.items for part in parts)
            if first is None:
                first = items
            elapsed = time.monotonic() - started
            figures = ProgressFigures(
                items=items,
                size=sum(part.size for part in parts),
                parts_done=sum(1 for part in parts if part.finished),
                parts=len(parts),
                rate_items_s=(items - first) / elapsed if elapsed > 0 else 0.0,
                total_items=total_items,
            )
            view.update(figures)
        except Exception as error:  # progress must never stop the backfill
            log.debug("backfill.progress_failed", error=str(error))
        await asyncio.sleep(view.poll_s)


async def run_alongside(work: Awaitable[None], *background: Coroutine[Any, Any, None]) -> None:
    """Awaits `work` while the `background` loops run; cancels them once it ends."""
    tasks = [asyncio.create_task(loop) for loop in background]
    try:
        await work
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
