"""LOCAL ONLY: the replication transform the chaos workers run.

`record_and_pass` appends one line per change it is asked to write (`pid time shard seq sub
pk`) to a file of its own process under the directory named by CHAOS_DELIVERY_DIR (not a
CONSUMER_ variable: those must all be settings), then passes the item through unchanged.
Items whose key starts with "bad" are poison: it raises, so the record goes to the DLQ.
Lines are written unbuffered (one `os.write` each) so a `kill -9` loses none already logged.

The event-loop stall: when the run drops a file `stall-<worker id>` (holding seconds) into that
directory, the next call in that worker claims it and blocks the worker's event loop with a
`time.sleep` while the replication sink's write waits for this hook, longer than the lease's
local expiry. The service runs hooks in a thread, so the sleep itself runs in a signal handler
on the main thread (the event loop's): SIGUSR2, installed when the worker imports this module.
The hook returns once the stall has begun, so the write goes on only after it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from consumer.records import ChangeEvent

DELIVERY_DIR_ENV = "CHAOS_DELIVERY_DIR"
WORKER_ID_ENV = "CONSUMER_LEASES__WORKER_ID"
POISON_PREFIX = "bad"
STALL_PREFIX = "stall-"
_STALL_CHECK_S = 0.05  # how often a worker looks for a stall request (a stat call)
STALL_SIGNAL = signal.SIGUSR2

_log_fd: int | None = None
_log_pid: int | None = None
_stall_checked_at = 0.0
_stall_seconds = 0.0
_stall_claim: Path | None = None
_stall_began = threading.Event()


def stall_request_path(directory: Path, worker_id: str) -> Path:
    return directory / f"{STALL_PREFIX}{worker_id}"


def _fd() -> int | None:
    global _log_fd, _log_pid
    directory = os.environ.get(DELIVERY_DIR_ENV)
    if not directory:
        return None
    pid = os.getpid()
    if _log_fd is None or _log_pid != pid:
        path = Path(directory) / f"deliveries-{pid}.log"
        _log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _log_pid = pid
    return _log_fd


def _stall_main_thread(signum: int, frame: FrameType | None) -> None:
    """The signal handler: runs on the main thread, so it blocks the event loop."""
    started = time.time()
    _stall_began.set()
    time.sleep(_stall_seconds)  # the fault
    if _stall_claim is not None:
        _stall_claim.write_text(f"{os.getpid()} {started:.6f} {time.time():.6f}\n")


def _install_stall_handler() -> None:
    if os.environ.get(DELIVERY_DIR_ENV) and threading.current_thread() is threading.main_thread():
        signal.signal(STALL_SIGNAL, _stall_main_thread)


def _stall_if_requested() -> None:
    global _stall_checked_at, _stall_seconds, _stall_claim
    now = time.monotonic()
    if now - _stall_checked_at < _STALL_CHECK_S:
        return
    _stall_checked_at = now
    directory, worker_id = os.environ.get(DELIVERY_DIR_ENV), os.environ.get(WORKER_ID_ENV)
    if not directory or not worker_id:
        return
    request = stall_request_path(Path(directory), worker_id)
    claimed = request.with_name(f"{request.name}.{os.getpid()}.claimed")
    try:
        request.rename(claimed)  # atomic: one call claims it
    except FileNotFoundError:
        return
    _stall_seconds, _stall_claim = float(claimed.read_text() or "0"), claimed
    _stall_began.clear()
    if threading.current_thread() is threading.main_thread():
        _stall_main_thread(STALL_SIGNAL, None)  # a hook run on the event loop: stall here
        return
    signal.pthread_kill(threading.main_thread().ident or 0, STALL_SIGNAL)
    _stall_began.wait(5.0)


def record_and_pass(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any] | None:
    key = str(event.keys.python.get("pk", ""))
    if key.startswith(POISON_PREFIX):
        raise RuntimeError("chaos poison item: the transform rejects it")
    _stall_if_requested()
    fd = _fd()
    if fd is not None:
        position = event.position
        line = (
            f"{os.getpid()} {time.time():.6f} {position.shard_id} "
            f"{position.sequence_number} {position.sub_sequence_number} {key}\n"
        )
        os.write(fd, line.encode())
    return item


_install_stall_handler()
