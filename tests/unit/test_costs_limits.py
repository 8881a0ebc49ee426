"""`compare cost` against the real services' limits (issue 14, item 8).

Sources of the rules tested here:
- Lambda event source mappings for DynamoDB/Kinesis streams process one batch per shard at a
  time unless ParallelizationFactor (1-10) lets up to that many batches of one shard run
  concurrently, keeping order per partition key (AWS Lambda Developer Guide, "Using AWS Lambda
  with Amazon DynamoDB", ParallelizationFactor; API reference CreateEventSourceMapping).
- Kinesis Data Streams accepts records up to 10 MiB; the default maximum record size of every
  stream is 1 MiB and is raised per stream with UpdateMaxRecordSize (1,024-10,240 KiB)
  (Kinesis Developer Guide, "Handle large records"; API reference UpdateMaxRecordSize).
- On-demand pricing rounds each record up to 1 KB for Data-In ("the size of each record rounded
  up to the nearest 1 KB"); no such rule is published for reads or retention (Kinesis pricing).
"""

from __future__ import annotations

import argparse
import math

import pytest

from consumer.cli import compare_cmd
from consumer.compare.costs.breakdown import Design, DesignCost
from consumer.compare.costs.compare import ScanRange, compare, cost_all
from consumer.compare.costs.errors import CostInputError
from consumer.compare.costs.kinesis import on_demand_cost
from consumer.compare.costs.prices import load_region
from consumer.compare.costs.scenario import MAX_WRITES_PER_DAY, LambdaSizing, Scenario, Workload
from consumer.compare.costs.traffic import traffic_of

PRICES = load_region("us-east-1")
GIB = 1024**3
DAYS = 730 / 24


def lambda_cost(scenario: Scenario) -> DesignCost:
    return {cost.design: cost for cost in cost_all(scenario, PRICES)}[Design.STREAMS_LAMBDA]


def sizing(scenario: Scenario, design: Design) -> dict[str, float]:
    cost = {cost.design: cost for cost in cost_all(scenario, PRICES)}[design]
    return dict(cost.sizing)


def test_lambda_reports_the_parallelization_factor_a_busy_shard_needs() -> None:
    # The example: 1e9 writes/day of 0.5 KB items, peak x2 = 23,148 writes/s over
    # max(4, ceil(23,148 x 1 WCU / 1,000)) = 24 stream shards = 964.5 records/s per shard.
    # One batch of 100 takes 100 ms + 100 x 1 ms = 200 ms: 500 records/s per concurrent batch,
    # so ceil(964.5 / 500) = 2 batches per shard must run at once.
    scenario = Scenario(Workload(writes_per_day=1e9, item_kb=0.5))
    costs = {cost.design: cost for cost in cost_all(scenario, PRICES)}
    streams = costs[Design.STREAMS_LAMBDA]
    assert dict(streams.sizing)["parallelization factor"] == 2
    assert streams.viable
    assert any("ParallelizationFactor 2" in note and "965" in note for note in streams.notes)


def test_lambda_beyond_parallelization_factor_ten_is_not_viable() -> None:
    # The same writes on 4 stream shards (given): 23,148 / 4 = 5,787 records/s per shard needs
    # ceil(5,787 / 500) = 12 concurrent batches: over Lambda's maximum of 10.
    scenario = Scenario(
        Workload(writes_per_day=1e9, item_kb=0.5), lambdas=LambdaSizing(stream_shards=4)
    )
    streams = lambda_cost(scenario)
    assert not streams.viable
    notes = " ".join(streams.notes)
    assert "not viable" in notes and "ParallelizationFactor 12" in notes and "10" in notes
    comparison = compare(scenario, PRICES, ScanRange(1e3, 1e10))
    assert Design.STREAMS_LAMBDA not in [cost.design for cost in comparison.ranking]


def test_lambda_at_a_quiet_rate_needs_no_parallelization() -> None:
    scenario = Scenario(Workload(writes_per_day=10_000_000, item_kb=2))
    streams = lambda_cost(scenario)
    assert dict(streams.sizing)["parallelization factor"] == 1
    assert not any("ParallelizationFactor" in n for n in streams.notes)


def test_the_fan_out_dispatcher_is_checked_too() -> None:
    # 3 consumers: the dispatcher reads the stream; 50 ms per batch of 100 carries 2,000/s per
    # shard. 5,787 records/s per shard (4 shards given) needs ceil(5,787 / 2,000) = 3.
    scenario = Scenario(
        Workload(writes_per_day=1e9, item_kb=0.5, consumers=3),
        lambdas=LambdaSizing(stream_shards=4),
    )
    streams = lambda_cost(scenario)
    assert dict(streams.sizing)["parallelization factor"] == 3
    assert streams.viable


def test_records_over_1_mib_name_the_stream_setting_up_to_10_mib() -> None:
    # 400 KB items: an update carries two images of 400 x 1,024 x 1.3 = 532,480 B each plus a
    # 500 B envelope = 1,065,460 B > 1 MiB (1,048,576 B), well under 10 MiB.
    scenario = Scenario(Workload(writes_per_day=1e6, item_kb=400))
    costs = {cost.design: cost for cost in cost_all(scenario, PRICES)}
    for design in (Design.KINESIS_PROVISIONED_POLLING, Design.KINESIS_ON_DEMAND_EFO):
        notes = " ".join(costs[design].notes)
        assert "UpdateMaxRecordSize" in notes
        assert "10 MiB" in notes
        assert "1,040 KB" in notes  # 1,065,460 / 1,024 = 1,040.5
        assert costs[design].viable
    small = {c.design: c for c in cost_all(Scenario(Workload(1e6, item_kb=2)), PRICES)}
    assert not any("MaxRecordSize" in n for n in small[Design.KINESIS_ON_DEMAND_EFO].notes)


def test_on_demand_reads_and_retention_use_record_bytes_ingest_rounds_to_1_kb() -> None:
    # Reference workload: mean record 4,493.6 B; ingest billed at mean(ceil) = 5 KB per record.
    scenario = Scenario(Workload(writes_per_day=10_000_000, item_kb=2, retention_days=7))
    traffic = traffic_of(scenario)
    cost = on_demand_cost(scenario, PRICES, efo=True)
    quantities = {line.component: line.quantity for line in cost.lines}
    records = 10_000_000 * DAYS
    assert quantities["ingest"] == pytest.approx(records * 5 * 1024 / GIB)
    read_gb = records * 4_493.6 / GIB  # not 5 KB per record
    assert quantities["retrieval (EFO)"] == pytest.approx(read_gb)
    assert quantities["retention 1-7 days"] == pytest.approx(10_000_000 * 4_493.6 / GIB * 6)
    assert traffic.mean_record_bytes == pytest.approx(4_493.6)


def test_absurd_writes_per_day_is_refused_with_the_supported_range() -> None:
    with pytest.raises(CostInputError, match="at most 1e\\+11"):
        Workload(writes_per_day=1e15, item_kb=1)
    Workload(writes_per_day=MAX_WRITES_PER_DAY, item_kb=1)
    with pytest.raises(CostInputError, match="scan_max"):
        ScanRange(1e3, 1e12)


def test_cli_refuses_1e15_writes_per_day_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="consumer")
    compare_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compare", "cost", "--writes-per-day", "1e15", "--item-kb", "1"])
    assert args.handler(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "--writes-per-day must be at most 1e+11" in captured.err
    assert "supported range" in captured.err


@pytest.mark.parametrize("consumers", [3, 4, 5])
def test_provisioned_polling_is_cheapest_from_about_a_third_of_a_million_with_3_to_5(
    consumers: int,
) -> None:
    comparison = compare(
        Scenario(Workload(writes_per_day=1e7, item_kb=2, consumers=consumers)), PRICES
    )
    changes = comparison.cheapest_changes
    assert len(changes) == 1
    assert changes[0].cheaper_below is Design.STREAMS_LAMBDA
    assert changes[0].cheaper_above is Design.KINESIS_PROVISIONED_POLLING
    assert 300_000 < changes[0].writes_per_day < 360_000


@pytest.mark.parametrize("consumers", [6, 10, 20])
def test_with_6_or_more_consumers_lambda_is_cheapest_again_at_high_rates(consumers: int) -> None:
    # Beyond 5 pollers polling is not viable; EFO's per-consumer charges let Lambda's fan-out
    # win back above some tens of millions of writes/day: README states this range.
    comparison = compare(
        Scenario(Workload(writes_per_day=1e7, item_kb=2, consumers=consumers)), PRICES
    )
    changes = comparison.cheapest_changes
    assert changes[0].cheaper_below is Design.STREAMS_LAMBDA
    assert 300_000 < changes[0].writes_per_day < 600_000
    assert changes[-1].cheaper_above is Design.STREAMS_LAMBDA
    assert 2e7 < changes[-1].writes_per_day < 1e8
    assert not math.isnan(changes[-1].usd_per_month)


def test_the_cheapest_design_changes_where_lambda_stops_being_viable() -> None:
    # 4 stream shards (given), 1 consumer: Lambda is cheapest and viable at 1e7 writes/day, but
    # above ~2.2e8 writes/day (peak per shard over 10 x 500 records/s) it cannot keep up, so
    # the cheapest design must change to a Kinesis one, and no crossing involving Lambda may
    # be reported at a rate where it is not viable.
    scenario = Scenario(
        Workload(writes_per_day=1e7, item_kb=2), lambdas=LambdaSizing(stream_shards=4)
    )
    comparison = compare(scenario, PRICES, ScanRange(1e6, 1e10))
    assert comparison.cheapest is not None
    assert comparison.cheapest.design is Design.STREAMS_LAMBDA
    last = comparison.cheapest_changes[-1]
    assert last.cheaper_below is Design.STREAMS_LAMBDA
    assert last.cheaper_above is not Design.STREAMS_LAMBDA
    assert 1e8 < last.writes_per_day < 1e9
    for crossover in comparison.crossovers:
        if Design.STREAMS_LAMBDA in (crossover.cheaper_below, crossover.cheaper_above):
            at = scenario.at_writes_per_day(crossover.writes_per_day)
            assert lambda_cost(at).viable
