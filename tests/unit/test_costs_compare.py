"""Properties of the comparison: more writes never cost less, and crossovers are where the
totals really cross (one of them computed by hand)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.compare.costs.breakdown import Design
from consumer.compare.costs.compare import ScanRange, compare, cost_all, total
from consumer.compare.costs.prices import PRICE_UNITS, PriceSheet, load_region, parse_price_sheet
from consumer.compare.costs.scenario import LambdaSizing, Scenario, Workload

PRICES = load_region("us-east-1")


def priced(**values: float) -> PriceSheet:
    """The packaged sheet with every price zero except `values` (key -> value)."""
    document: dict[str, Any] = PRICES.model_dump(mode="json")
    for key in PRICE_UNITS:
        document["prices"][key]["value"] = values.get(key, 0.0)
    return parse_price_sheet(orjson.dumps(document), "test")


workloads = st.builds(
    Workload,
    writes_per_day=st.just(1.0),
    item_kb=st.floats(min_value=0.05, max_value=400),
    update_share=st.floats(min_value=0, max_value=1),
    consumers=st.integers(min_value=1, max_value=8),
    retention_days=st.sampled_from([1.0, 3.0, 7.0, 30.0, 365.0]),
    peak_factor=st.floats(min_value=1, max_value=10),
)
rates = st.floats(min_value=1.0, max_value=1e11)


@settings(max_examples=150, deadline=None)
@given(workload=workloads, first=rates, second=rates, batch_size=st.sampled_from([1, 100, 10_000]))
def test_more_writes_never_cost_less(
    workload: Workload, first: float, second: float, batch_size: int
) -> None:
    low, high = sorted((first, second))
    scenario = Scenario(workload, lambdas=LambdaSizing(batch_size=batch_size))
    for design in Design:
        cheaper = total(design, scenario, PRICES, low)
        dearer = total(design, scenario, PRICES, high)
        assert dearer >= cheaper * (1 - 1e-12), (design, low, high, cheaper, dearer)


@settings(max_examples=40, deadline=None)
@given(workload=workloads, rate=rates)
def test_every_line_is_finite_and_non_negative(workload: Workload, rate: float) -> None:
    for cost in cost_all(Scenario(workload).at_writes_per_day(rate), PRICES):
        for entry in cost.lines:
            assert 0 <= entry.usd_per_month < float("inf"), (cost.design, entry)


def test_hand_computed_crossover() -> None:
    # Only two prices: an on-demand stream-hour ($0.04 -> 730 h = $29.20 a month, flat) and
    # Lambda requests at $1 per million. With batch size 1 every record is its own invocation,
    # so Streams + Lambda costs writes/day x 30.41667 days x $1/M. They cross where
    # w x 30.41667 / 1e6 = 29.20, w = 29.20 x 1e6 / 30.41667 = 960,000 writes/day.
    prices = priced(kinesis_on_demand_stream_hour=0.04, lambda_requests_million=1.0)
    scenario = Scenario(
        Workload(writes_per_day=1_000, item_kb=1), lambdas=LambdaSizing(batch_size=1)
    )
    comparison = compare(scenario, prices, ScanRange(1e3, 1e8))
    found = [
        crossover
        for crossover in comparison.crossovers
        if crossover.cheaper_below is Design.STREAMS_LAMBDA
        and crossover.cheaper_above is Design.KINESIS_ON_DEMAND_POLLING
    ]
    assert len(found) == 1
    assert found[0].writes_per_day == pytest.approx(960_000, rel=1e-5)
    assert found[0].usd_per_month == pytest.approx(29.20, rel=1e-5)


@pytest.mark.parametrize("consumers", [1, 3, 6])
def test_crossovers_are_where_the_totals_cross(consumers: int) -> None:
    scenario = Scenario(Workload(writes_per_day=1e7, item_kb=2, consumers=consumers))
    comparison = compare(scenario, PRICES)
    for crossover in comparison.crossovers:
        below = crossover.writes_per_day * (1 - 1e-4)
        above = crossover.writes_per_day * (1 + 1e-4)
        cheap, dear = crossover.cheaper_below, crossover.cheaper_above
        assert total(cheap, scenario, PRICES, below) <= total(dear, scenario, PRICES, below)
        assert total(dear, scenario, PRICES, above) <= total(cheap, scenario, PRICES, above)


def test_cheapest_changes_follow_the_ranking() -> None:
    # With 3 consumers, Streams + Lambda needs the SNS/SQS fan-out and loses its lead early.
    scenario = Scenario(Workload(writes_per_day=1e7, item_kb=2, consumers=3))
    comparison = compare(scenario, PRICES)
    assert comparison.cheapest_changes, "expected the cheapest design to change"
    first = comparison.cheapest_changes[0]
    assert first.cheaper_below is Design.STREAMS_LAMBDA
    previous: Design = first.cheaper_below
    for change in comparison.cheapest_changes:
        assert change.cheaper_below is previous
        previous = change.cheaper_above
    # At the scenario's own rate the last change before it names the cheapest design.
    before = [c for c in comparison.cheapest_changes if c.writes_per_day <= 1e7]
    leader = before[-1].cheaper_above if before else first.cheaper_below
    assert comparison.cheapest is not None
    assert comparison.cheapest.design is leader


def test_not_viable_designs_are_never_ranked_nor_crossed() -> None:
    scenario = Scenario(Workload(writes_per_day=1e7, item_kb=2, consumers=6))
    comparison = compare(scenario, PRICES)
    polling = {Design.KINESIS_ON_DEMAND_POLLING, Design.KINESIS_PROVISIONED_POLLING}
    assert not polling & {cost.design for cost in comparison.ranking}
    for crossover in comparison.crossovers:
        assert not polling & {crossover.cheaper_below, crossover.cheaper_above}


def test_a_range_without_order_changes_has_no_crossovers() -> None:
    # One consumer, 1e3 to 1e10 writes/day: Streams + Lambda stays cheapest (no CDC units).
    comparison = compare(Scenario(Workload(writes_per_day=1e7, item_kb=2)), PRICES)
    assert comparison.cheapest is not None
    assert comparison.cheapest.design is Design.STREAMS_LAMBDA
    assert comparison.cheapest_changes == ()
