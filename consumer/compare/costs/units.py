"""Units and calendar constants shared by every formula: a month is 730 hours, as AWS's own
pricing examples use; sizes are binary (AWS's Kinesis pricing counts "1 KB (1,024 bytes)")."""

from __future__ import annotations

import math

HOURS_PER_MONTH = 730.0
SECONDS_PER_HOUR = 3_600.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * SECONDS_PER_HOUR
DAYS_PER_MONTH = HOURS_PER_MONTH / 24.0
SECONDS_PER_DAY = 86_400.0

KIB = 1_024.0
MIB = KIB * KIB
GIB = KIB * MIB

MILLION = 1_000_000.0


def ceil_count(value: float) -> int:
    """A count (shards, tasks, partitions) rounded up: 2.0000000001 from float noise is 2."""
    return math.ceil(value - 1e-9)
