"""`--workers N`: N-1 extra replay worker processes next to this one.

Each is `consumer replay` with the same replay name and the same exact window (so "now" and
relative times mean the same instant in all of them), sharing the shards through the replay's
lease table like any other replay workers, which may as well run on other hosts. Processes,
not coroutines: decoding is CPU work, and one Python process uses one core.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from consumer.replay.request import ReplayRequest
from consumer.replay.window import iso_ms, iso_us

CHILD_LOG_LEVEL = "warning"


def window_args(request: ReplayRequest) -> list[str]:
    """The options naming the replay and its exact window, grace included (for an extra worker
    or a rerun)."""
    window = request.window
    return [
        "--from",
        "TRIM_HORIZON" if window.from_ms is None else iso_ms(window.from_ms),
        "--to",
        iso_us(window.to_us),
        "--replay-name",
        request.name,
        "--to-grace",
        f"{window.grace_ms / 1000:.3f}".rstrip("0").rstrip("."),  # exact (:g keeps 6 digits)
        "--pipelines",
        ",".join(request.pipelines),
    ]


def worker_argv(request: ReplayRequest, config: Path | None) -> list[str]:
    """The command line of one extra worker. It keeps the lease table: the worker that
    started it deletes the table once every extra worker has exited (a worker starting after
    the table is gone would replay everything again)."""
    argv = [sys.executable, "-m", "consumer", "replay", *window_args(request), "--workers", "1"]
    argv += ["--progress", "none", "--worker-process", "--keep-lease-table"]
    if config is not None:
        argv += ["--config", str(config)]
    return argv


def spawn_workers(argv: Sequence[str], count: int) -> list[subprocess.Popen[bytes]]:
    """Starts `count` workers. Their logs (warnings and up) go to our stderr."""
    env = {**os.environ, "CONSUMER_TELEMETRY__LOG_LEVEL": CHILD_LOG_LEVEL}
    try:
        output: int | None = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        output = None  # stderr is not a file (captured): inherit
    # Their own session: a Ctrl-C on the terminal reaches only us, and we pass on one SIGTERM
    # (a worker that got both would take the second signal as "stop without draining").
    return [
        subprocess.Popen(list(argv), env=env, stdout=output, stderr=output, start_new_session=True)
        for _ in range(count)
    ]


def stop_workers(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """Asks every worker still running to stop gracefully (SIGTERM)."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()


@dataclass(frozen=True)
class WorkerExit:
    """How an extra worker ended; `stopped` when we stopped it (the replay was over)."""

    code: int
    stopped: bool = False

    @property
    def failed(self) -> bool:
        return not self.stopped and self.code not in (0, 130)


def wait_workers(
    processes: Sequence[subprocess.Popen[bytes]], grace_s: float, timeout_s: float
) -> list[WorkerExit]:
    """After this worker is done: gives the others `grace_s` to end by themselves (a complete
    replay ends every worker), then stops the rest gracefully (SIGTERM; they may still be
    starting up, with nothing left to do), and kills what is left after `timeout_s`."""
    deadline = time.monotonic() + grace_s
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.01, deadline - time.monotonic()))
    running = {id(process) for process in processes if process.poll() is None}
    stop_workers(processes)
    exits = []
    for process in processes:
        try:
            code = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        exits.append(WorkerExit(code, stopped=id(process) in running))
    return exits
