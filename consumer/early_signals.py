"""Stop signals that arrive before the worker's event loop can handle them.

ECS may send SIGTERM at any moment, also while `consumer run` is still importing its modules
(about half a second). Python's default action would kill the process with -15, which ECS
reports as a failed stop. So the CLI holds SIGTERM and SIGINT from its first line: they are
remembered here, and the worker, once its loop handles signals, acts on them as a graceful
stop. Kept free of imports beyond `signal` so that holding starts as early as possible.
"""

from __future__ import annotations

import signal
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_received: list[int] = []


def _remember(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)


def hold_stop_signals() -> None:
    """Until the event loop installs its handlers, remember stop signals instead of dying."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _remember)


def received() -> list[int]:
    """The stop signals held so far, in order (each is handed over once)."""
    held = list(_received)
    _received.clear()
    return held
