"""LOCAL ONLY: `python -m tests.chaos.stall_sampler` runs `consumer run` (settings from the
usual CONSUMER_* environment) and reports where its event loop stood still.

A 10 ms ticker runs on the worker's loop; a thread samples the loop thread's stack every 20 ms
while the ticker is late, and each stall longer than 150 ms is written to stderr as one
`STALL at=<s since start> dur=<s> samples=<n>` line followed by its three most frequent stacks
(innermost frame first). This is how the start-up heap's freeze was found blocking a starting
worker's loop for 1.57 s right after its first lease (issue 15).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import traceback
from collections import Counter
from types import FrameType

TICK_S = 0.01
SAMPLE_S = 0.02
LATE_S = 0.05
REPORT_S = 0.15


class StallSampler:
    def __init__(self) -> None:
        self.loop_thread = threading.get_ident()
        self.last_tick: float | None = None  # None until the loop runs
        self.started = time.monotonic()

    async def tick(self) -> None:
        while True:
            self.last_tick = time.monotonic()
            await asyncio.sleep(TICK_S)

    def sample(self) -> None:
        stall_from: float | None = None
        stacks: list[str] = []
        while True:
            time.sleep(SAMPLE_S)
            last = self.last_tick
            if last is None:
                continue
            if time.monotonic() - last > LATE_S:
                if stall_from is None:
                    stall_from, stacks = last, []
                frame = sys._current_frames().get(self.loop_thread)
                if frame is not None:
                    stacks.append(_stack(frame))
            elif stall_from is not None:
                if last - stall_from > REPORT_S:
                    self._report(stall_from, last - stall_from, stacks)
                stall_from = None

    def _report(self, at: float, duration: float, stacks: list[str]) -> None:
        lines = [f"STALL at={at - self.started:.2f} dur={duration:.2f} samples={len(stacks)}"]
        lines += [f"  {n}x {stack}" for stack, n in Counter(stacks).most_common(3)]
        sys.stderr.write("\n".join(lines) + "\n")


def _stack(frame: FrameType) -> str:
    frames = reversed(traceback.extract_stack(frame)[-40:])
    return " <- ".join(
        f"{os.path.basename(f.filename)}:{f.lineno}:{f.name}"
        for f in frames
        if "asyncio" not in f.filename
    )


def main() -> int:
    sampler = StallSampler()
    threading.Thread(target=sampler.sample, name="stall-sampler", daemon=True).start()
    new_event_loop = asyncio.new_event_loop

    def loop_with_ticker() -> asyncio.AbstractEventLoop:
        loop = new_event_loop()
        loop.call_soon(lambda: loop.create_task(sampler.tick()))
        return loop

    import asyncio.events as events  # asyncio.run's loop factory

    events.new_event_loop = loop_with_ticker
    from consumer.cli import main as consumer_main  # it holds the stop signals first

    return consumer_main(["run", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
