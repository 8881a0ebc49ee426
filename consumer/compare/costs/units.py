"""Units and calendar constants shared by every formula.

A month is 730 hours (8,760 h / 12), as AWS's own pricing examples use; so a month has
30.4167 days and 2,628,000 seconds. Sizes are binary: 1 KB = 1,024 bytes, 1 MB = 1,024 KB,
1 GB = 1,024 MB (AWS's Kinesis pricing page counts "1 KB (1,024 bytes)").
"""

from __future__ import annotations

HOURS_PER_MONTH = 730.0
SECONDS_PER_HOUR = 3_600.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * SECONDS_PER_HOUR
DAYS_PER_MONTH = HOURS_PER_MONTH / 24.0
SECONDS_PER_DAY = 86_400.0

KIB = 1_024.0
MIB = KIB * KIB
GIB = KIB * MIB

MILLION = 1_000_000.0
