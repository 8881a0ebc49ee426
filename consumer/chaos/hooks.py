"""LOCAL ONLY: the replication transform the chaos workers run.

`record_and_pass` appends one line per change it is asked to write (`pid time shard seq sub
pk`) to a file of its own process under the directory named by CHAOS_DELIVERY_DIR (not a
CONSUMER_ variable: those must all be settings), then passes the item through unchanged.
Items whose key starts with "bad" are poison: it raises, so the record goes to the DLQ.
Lines are written unbuffered (one `os.write` each) so a `kill -9` loses none already logged.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from consumer.records import ChangeEvent

DELIVERY_DIR_ENV = "CHAOS_DELIVERY_DIR"
POISON_PREFIX = "bad"

_log_fd: int | None = None
_log_pid: int | None = None


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


def record_and_pass(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any] | None:
    key = str(event.keys.python.get("pk", ""))
    if key.startswith(POISON_PREFIX):
        raise RuntimeError("chaos poison item: the transform rejects it")
    fd = _fd()
    if fd is not None:
        position = event.position
        line = (
            f"{os.getpid()} {time.time():.6f} {position.shard_id} "
            f"{position.sequence_number} {position.sub_sequence_number} {key}\n"
        )
        os.write(fd, line.encode())
    return item
