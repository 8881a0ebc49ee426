"""Nearest-rank percentiles: every reported value is one that was observed.

The p-th percentile of n sorted values is the value at rank ceil(p/100 * n) (1-based), so
p50 <= p90 <= p99 <= max always holds, and with fewer than 100 values p99 is the maximum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

PERCENTILE_METHOD = "nearest-rank"


def nearest_rank(sorted_values: list[float], percent: float) -> float:
    """The `percent`-th percentile (0 < percent <= 100) of non-empty, ascending values."""
    if not sorted_values:
        raise ValueError("no values to take a percentile of")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    rank = math.ceil(percent / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


@dataclass(frozen=True)
class Summary:
    """n values summarised in milliseconds: p50, p90, p99 (nearest rank) and the maximum."""

    n: int
    p50: float
    p90: float
    p99: float
    max: float


def summarize(values: Iterable[float]) -> Summary | None:
    """The summary of `values`, or None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    return Summary(
        n=len(ordered),
        p50=nearest_rank(ordered, 50),
        p90=nearest_rank(ordered, 90),
        p99=nearest_rank(ordered, 99),
        max=ordered[-1],
    )
