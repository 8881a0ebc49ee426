"""The replication transform the log canary test runs (`tests.canary_hooks:fail_on_canaries`).

Each failure quotes the whole item (canary values included) in its error, as a careless hook
would: that text may reach the dead-letter message, never a log line. Keys (the `pk`):
"...-refuse" raises ValueError, "...-exit" raises SystemExit, "...-slow" sleeps past
pipelines.replication.transform_timeout_s, "...-mangle" returns an item botocore refuses; any
other key passes through.
"""

from __future__ import annotations

import time
from typing import Any

from consumer.records import ChangeEvent

SLOW_S = 3.0
NUMBER_IN_ITEMS = "31415926535897932384626"  # test_log_canary.NUMBER


def fail_on_canaries(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any] | None:
    key = str(event.keys.python["pk"])
    if key.endswith("-refuse"):
        raise ValueError(f"refusing {item!r}")
    if key.endswith("-exit"):
        raise SystemExit(f"giving up on {item!r}")
    if key.endswith("-slow"):
        time.sleep(SLOW_S)
    if key.endswith("-mangle"):
        # Not DynamoDB JSON (an S holding an int): botocore refuses the whole PutItem with an
        # error quoting the value, which fails the batch (bisected, retried, then parked).
        return {**item, "note": {"S": int(NUMBER_IN_ITEMS)}}
    return item
