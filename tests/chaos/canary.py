"""LOCAL ONLY: the log canary of a chaos run (issue 16: no item value in any log line).

With CHAOS_CANARY set (a distinctive word), every item the run writes carries it: in its key,
a string attribute and a map, with a distinctive number beside it; and the workers log at
DEBUG. tests/integration/test_chaos.py searches every line the workers wrote for both.
"""

from __future__ import annotations

import os
from typing import Any

CANARY_ENV = "CHAOS_CANARY"
CANARY_NUMBER = "27182818284590452353602874"  # a number attribute of every canary item


def canary() -> str | None:
    return os.environ.get(CANARY_ENV) or None


def canary_key(key: str) -> str:
    word = canary()
    return f"{key}-{word}" if word else key


def with_canary(item: dict[str, Any]) -> dict[str, Any]:
    """The item (DynamoDB JSON) with the canary in a string, a map and a number, if set."""
    word = canary()
    if not word:
        return item
    return {
        **item,
        "note": {"S": f"note {word}"},
        "memo": {"M": {"text": {"S": word}}},
        "serial": {"N": CANARY_NUMBER},
    }


def canary_environment() -> dict[str, str]:
    """The workers' settings for a canary run: DEBUG, so every level is searched."""
    return {"CONSUMER_TELEMETRY__LOG_LEVEL": "debug"} if canary() else {}
