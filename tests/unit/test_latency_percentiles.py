"""Nearest-rank percentiles: the rank rule, the order p50 <= p90 <= p99 <= max, and that every
reported value was observed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.compare.latency.percentiles import PERCENTILE_METHOD, Summary, nearest_rank, summarize


def test_the_method_is_named_in_reports() -> None:
    assert PERCENTILE_METHOD == "nearest-rank"


def test_nearest_rank_takes_the_value_at_rank_ceil_p_times_n() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert nearest_rank(values, 50) == 5.0  # rank ceil(5.0) = 5
    assert nearest_rank(values, 90) == 9.0
    assert nearest_rank(values, 99) == 10.0  # rank ceil(9.9) = 10
    assert nearest_rank(values, 100) == 10.0
    assert nearest_rank(values, 1) == 1.0


def test_with_fewer_than_100_values_p99_is_the_maximum() -> None:
    summary = summarize([5.0, 1.0, 3.0])
    assert summary == Summary(n=3, p50=3.0, p90=5.0, p99=5.0, max=5.0)


def test_one_value_is_every_percentile() -> None:
    assert summarize([7.5]) == Summary(n=1, p50=7.5, p90=7.5, p99=7.5, max=7.5)


def test_no_values_summarise_to_none() -> None:
    assert summarize([]) is None


@pytest.mark.parametrize("percent", [0, -1, 100.5])
def test_a_percent_outside_0_to_100_is_refused(percent: float) -> None:
    with pytest.raises(ValueError, match="percent"):
        nearest_rank([1.0], percent)


def test_no_values_have_no_percentile() -> None:
    with pytest.raises(ValueError, match="no values"):
        nearest_rank([], 50)


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=300))
def test_percentiles_are_ordered_observed_values(values: list[float]) -> None:
    summary = summarize(values)
    assert summary is not None
    assert summary.n == len(values)
    assert summary.p50 <= summary.p90 <= summary.p99 <= summary.max == max(values)
    assert {summary.p50, summary.p90, summary.p99} <= set(values)
