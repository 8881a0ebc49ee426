"""The one clock that probe write times and apply times are both read from."""

from __future__ import annotations

import time
from collections.abc import Callable

WallClockUs = Callable[[], int]


def wall_us() -> int:
    """Now, in epoch microseconds (the system clock, as Kinesis arrival times are)."""
    return time.time_ns() // 1000
