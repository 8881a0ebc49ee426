"""The replication transform the log canary test runs (`tests.canary_hooks:fail_on_canaries`).

Each failure quotes the whole item (canary values included) in its error, as a careless hook
would: that text may reach the dead-letter message, never a log line. Keys (the `pk`):
"...-refuse" raises ValueError, "...-exit" raises SystemExit, "...-slow" sleeps past
pipelines.replication.transform_timeout_s; any other key passes through.
"""

from __future__ import annotations

import time
from typing import Any

from consumer.records import ChangeEvent

SLOW_S = 3.0


def fail_on_canaries(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any] | None:
    key = str(event.keys.python["pk"])
    if key.endswith("-refuse"):
        raise ValueError(f"refusing {item!r}")
    if key.endswith("-exit"):
        raise SystemExit(f"giving up on {item!r}")
    if key.endswith("-slow"):
        time.sleep(SLOW_S)
    return item
