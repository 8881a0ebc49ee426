"""The cost model against cases computed by hand; each test writes out its arithmetic.

Common ground (packaged us-east-1 prices, model defaults unless a test says otherwise):
a month is 730 h = 2,628,000 s = 30.41667 days; 1 KB = 1,024 B, 1 GB = 1,024^3 B.

The reference workload (`REFERENCE`): 10,000,000 writes/day of 2 KB items, half updates,
one consumer, 24 h retention, peak factor 2.
    writes/s        = 1e7 / 86,400 = 115.741 (peak 231.481)
    records/month   = 1e7 x 30.41667 = 304,166,667
    image           = 2 x 1024 x 1.3 = 2,662.4 B
    one-image rec.  = 500 + 2,662.4 = 3,162.4 B    -> 4 KB on-demand, 1 PUT payload unit
    two-image rec.  = 500 + 5,324.8 = 5,824.8 B    -> 6 KB on-demand, 1 PUT payload unit
    mean record     = (3,162.4 + 5,824.8) / 2 = 4,493.6 B; mean billed KB = (4 + 6) / 2 = 5
    CDC units/write = ceil(2) = 2
"""

from __future__ import annotations

import math

import pytest

from consumer.compare.costs.breakdown import Design, DesignCost
from consumer.compare.costs.compare import cost_all
from consumer.compare.costs.kinesis import on_demand_cost, provisioned_cost, provisioned_shards
from consumer.compare.costs.lambda_streams import stream_batches, streams_lambda_cost
from consumer.compare.costs.prices import load_region
from consumer.compare.costs.scenario import (
    LambdaSizing,
    RecordShape,
    Scenario,
    ServiceSizing,
    Workload,
)
from consumer.compare.costs.traffic import traffic_of

PRICES = load_region("us-east-1")
MONTH_S = 730 * 3600  # 2,628,000
DAYS = 730 / 24  # 30.416667
GIB = 1024**3
REFERENCE = Scenario(Workload(writes_per_day=10_000_000, item_kb=2))
RECORDS = 10_000_000 * DAYS  # 304,166,666.7


def line(cost: DesignCost, component: str) -> float:
    matches = [entry.usd_per_month for entry in cost.lines if entry.component == component]
    assert len(matches) == 1, f"{component!r} not in {[e.component for e in cost.lines]}"
    return matches[0]


def test_record_sizes_and_rounding_of_the_reference_workload() -> None:
    traffic = traffic_of(REFERENCE)
    assert traffic.one_image_record_bytes == pytest.approx(3_162.4)
    assert traffic.two_image_record_bytes == pytest.approx(5_824.8)
    assert traffic.mean_record_bytes == pytest.approx(4_493.6)
    assert traffic.billed_kib_per_record == 5  # (ceil(3.09) + ceil(5.69)) / 2 = (4 + 6) / 2
    assert traffic.put_payload_units_per_record == 1
    assert traffic.cdc_units_per_write == 2
    assert traffic.records_per_month == pytest.approx(RECORDS)


def test_put_payload_units_round_each_record_up_to_25_kb() -> None:
    # 20 KB items, all updates, no JSON overhead, no envelope: each record carries two
    # 20,480 B images = 40,960 B = 1.6 units of 25,600 B -> 2 units per record (not 1.6).
    scenario = Scenario(
        Workload(writes_per_day=1_000_000, item_kb=20, update_share=1.0),
        records=RecordShape(json_overhead=1.0, envelope_bytes=0),
    )
    traffic = traffic_of(scenario)
    assert traffic.put_payload_units_per_record == 2
    cost = provisioned_cost(scenario, PRICES, efo=False)
    # 1e6 x 30.41667 = 30,416,667 records x 2 units = 60,833,333 units x $0.014/M = $0.8517
    assert line(cost, "ingest (PUT payload units)") == pytest.approx(60.833333 * 0.014, rel=1e-6)


def test_on_demand_ingest_rounds_each_record_up_to_1_kb() -> None:
    # 0.5 KB items, all inserts/deletes, overhead 1.0, envelope 100 B: 512 + 100 = 612 B,
    # billed as 1 KB (not 0.6 KB). 86,400,000 writes/day -> 1e3/s.
    # Records/month = 86.4e6 x 30.41667 = 2,628,000,000; x 1 KB = 2,628,000,000 KB
    # = 2,506.26 GB x $0.08 = $200.50.
    scenario = Scenario(
        Workload(writes_per_day=86_400_000, item_kb=0.5, update_share=0.0),
        records=RecordShape(json_overhead=1.0, envelope_bytes=100),
    )
    cost = on_demand_cost(scenario, PRICES, efo=False)
    gigabytes = 2_628_000_000 / 1024**2
    assert line(cost, "ingest") == pytest.approx(gigabytes * 0.08)
    assert line(cost, "ingest") == pytest.approx(200.50, abs=0.01)


def test_change_data_capture_units_are_per_kb_of_the_larger_image_rounded_up() -> None:
    # 2.1 KB items: ceil(2.1) = 3 units per write, whatever the record's JSON size.
    # 1e6 writes/day -> 30,416,667 writes x 3 = 91,250,000 units x $0.10/M = $9.125
    scenario = Scenario(Workload(writes_per_day=1_000_000, item_kb=2.1))
    for cost in cost_all(scenario, PRICES)[:4]:
        assert line(cost, "DynamoDB change data capture") == pytest.approx(9.125)
    lambda_cost = streams_lambda_cost(scenario, PRICES)
    assert "DynamoDB change data capture" not in [entry.component for entry in lambda_cost.lines]


def test_reference_kinesis_provisioned_shared_polling() -> None:
    cost = provisioned_cost(REFERENCE, PRICES, efo=False)
    # Shards: peak 231.481 records/s x 4,493.6 B = 0.99199 MB/s -> 1 shard (records: 0.23,
    # one poller's reads 0.99199 / 2 = 0.5).
    assert dict(cost.sizing)["shards"] == 1
    assert line(cost, "shard hours") == pytest.approx(1 * 730 * 0.015)  # $10.95
    # 304,166,667 records x 1 unit x $0.014/M = $4.2583
    assert line(cost, "ingest (PUT payload units)") == pytest.approx(RECORDS / 1e6 * 0.014)
    assert line(cost, "retrieval (shared)") == 0
    assert line(cost, "retention 1-7 days") == 0
    assert line(cost, "retention beyond 7 days") == 0
    # 304,166,667 x 2 units x $0.10/M = $60.833
    assert line(cost, "DynamoDB change data capture") == pytest.approx(RECORDS * 2 / 1e6 * 0.10)
    # Tasks: max(2, ceil(231.48 / 1000)) = 2; 2 x 730 h x (0.25 x 0.04048 + 0.5 x 0.004445)
    # = 1,460 x 0.0123425 = $18.020
    assert dict(cost.sizing)["tasks per consumer"] == 2
    assert line(cost, "Fargate tasks") == pytest.approx(2 * 730 * (0.25 * 0.04048 + 0.5 * 0.004445))
    # Lease writes: heartbeats 2 / 2.5 = 0.8/s; checkpoints 1 shard x (1 - e^-1157) / 10 = 0.1/s
    # 0.9/s x 2,628,000 = 2,365,200 x $0.625/M = $1.4783
    assert line(cost, "lease table writes") == pytest.approx(0.9 * MONTH_S / 1e6 * 0.625)
    # Lease reads: 2 workers / 5 s = 0.4 scans/s x ceil((1 + 2) x 300 / 4096) = 1 unit
    # = 1,051,200 x $0.125/M = $0.1314
    assert line(cost, "lease table reads") == pytest.approx(0.4 * MONTH_S / 1e6 * 0.125)
    # DLQ: 304,166,667 x 0.0001 = 30,416.7 failed x (2 x 1 chunk + 1) = 91,250 x $0.40/M
    assert line(cost, "SQS dead-letter queue") == pytest.approx(RECORDS * 1e-4 * 3 / 1e6 * 0.40)
    # Total: 10.95 + 4.2583 + 60.8333 + 18.0201 + 1.4783 + 0.1314 + 0.0365 = 95.7079
    assert cost.total == pytest.approx(95.7079, abs=1e-3)


def test_reference_kinesis_provisioned_efo() -> None:
    cost = provisioned_cost(REFERENCE, PRICES, efo=True)
    # 1 consumer x 1 shard x 730 h x $0.015 = $10.95
    assert line(cost, "EFO consumer-shard hours") == pytest.approx(10.95)
    # Bytes read: 304,166,667 x 4,493.6 B = 1,272.93 GB x $0.013 = $16.548
    assert line(cost, "retrieval (EFO)") == pytest.approx(RECORDS * 4_493.6 / GIB * 0.013)
    # Everything else as with polling: 95.7079 + 10.95 + 16.548 = 123.206
    assert cost.total == pytest.approx(123.206, abs=1e-3)


def test_reference_kinesis_on_demand_efo() -> None:
    cost = on_demand_cost(REFERENCE, PRICES, efo=True)
    assert line(cost, "stream hours") == pytest.approx(730 * 0.04)  # $29.20
    # 304,166,667 records x 5 KB = 1,450.38 GB x $0.08 = $116.03
    billed_gb = RECORDS * 5 / 1024**2
    assert line(cost, "ingest") == pytest.approx(billed_gb * 0.08)
    # EFO reads on the records' bytes (the 1 KB rounding is published for Data-In only):
    # 304,166,667 x 4,493.6 B = 1,272.94 GB x $0.05 = $63.65
    assert line(cost, "retrieval (EFO)") == pytest.approx(RECORDS * 4_493.6 / GIB * 0.05)
    # Lease table: on-demand keeps max(4, ceil(2 x 0.992)) = 4 shards;
    # writes (0.8 + 4 x 0.1)/s = 1.2/s x 2,628,000 = 3,153,600 x $0.625/M = $1.971
    assert dict(cost.sizing)["shards (estimated)"] == 4
    assert line(cost, "lease table writes") == pytest.approx(1.2 * MONTH_S / 1e6 * 0.625)
    # 29.20 + 116.03 + 63.647 + 60.833 + 18.020 + 1.971 + 0.1314 + 0.0365 = 289.87
    assert cost.total == pytest.approx(289.87, abs=0.01)


def test_reference_streams_lambda() -> None:
    cost = streams_lambda_cost(REFERENCE, PRICES)
    # Stream shards: max(4, ceil(231.48 peak writes/s x 2 WCU / 1000)) = 4
    # r = 115.741 / 4 = 28.935 records/s per shard; r / 100 = 0.289 < 4 polls x (1 - e^-7.23)
    # = 3.99712 batches/s per shard -> 15.98845 batches/s, 7.239 records per batch
    batches = stream_batches(REFERENCE, traffic_of(REFERENCE))
    per_shard = 4 * (1 - math.exp(-28.935185 / 4))
    assert batches.shards == 4
    assert batches.batches_per_s == pytest.approx(4 * per_shard, rel=1e-6)
    invocations = 4 * per_shard * MONTH_S  # 42,017,651
    assert line(cost, "stream reads") == 0
    assert line(cost, "Lambda requests") == pytest.approx(invocations / 1e6 * 0.20)  # $8.40
    # Duration: 42,017,651 x 0.1 s + 304,166,667 records x 0.001 s = 4,505,932 s
    # x 0.5 GB = 2,252,966 GB-s x $0.0000166667 = $37.55
    seconds = invocations * 0.1 + RECORDS * 0.001
    assert line(cost, "Lambda duration") == pytest.approx(seconds * 0.5 * 0.0000166667)
    # DLQ: 30,416.7 on-failure records x 3 requests x $0.40/M = $0.0365
    assert cost.total == pytest.approx(8.4035 + 37.5495 + 0.0365, abs=1e-3)


def test_lambda_batches_at_low_rate_are_single_records() -> None:
    # 86,400 writes/day = 1/s over 4 shards: r = 0.25/s per shard; polls find a record in
    # 1 - e^(-0.0625) = 6.06% of the 4 polls/s: 0.24235 batches/s per shard, 0.9694 in all
    # (nearly one invocation per record).
    scenario = Scenario(Workload(writes_per_day=86_400, item_kb=1))
    batches = stream_batches(scenario, traffic_of(scenario))
    assert batches.batches_per_s == pytest.approx(4 * 4 * (1 - math.exp(-0.0625)), rel=1e-9)
    assert batches.batches_per_s == pytest.approx(0.96939, abs=1e-5)


def test_lambda_batches_at_high_rate_are_full() -> None:
    # 8.64e9 writes/day = 100,000/s, peak factor 1, 2 KB -> 200,000 WCU/s -> 200 partitions;
    # r = 500/s per shard > 4 polls x 100: batches are full, 500 / 100 = 5 per shard, 1,000/s.
    scenario = Scenario(Workload(writes_per_day=8.64e9, item_kb=2, peak_factor=1))
    batches = stream_batches(scenario, traffic_of(scenario))
    assert batches.shards == 200
    assert batches.batches_per_s == pytest.approx(1_000)
    assert batches.records_per_batch == pytest.approx(100)


def test_lambda_batches_are_capped_by_the_6_mb_payload() -> None:
    # Batch size 10,000 of 4,493.6 B records: floor(6 MiB / 4,493.6) = 1,400 records at most.
    scenario = Scenario(
        Workload(writes_per_day=8.64e9, item_kb=2, peak_factor=1),
        lambdas=LambdaSizing(batch_size=10_000),
    )
    assert stream_batches(scenario, traffic_of(scenario)).batch_size == 1_400


def test_fan_out_beyond_two_consumers() -> None:
    # 3 consumers, 1e6 writes/day, 1 stream shard, batch size 1: every batch is one record,
    # batches = max(r / 1, ...) = r, so 30,416,667 batches a month of 4,493.6 B: 1 chunk and
    # 1 message each (4,493.6 / 65,536 + 0.5 < 1).
    scenario = Scenario(
        Workload(writes_per_day=1_000_000, item_kb=2, consumers=3),
        lambdas=LambdaSizing(batch_size=1, stream_shards=1),
    )
    cost = streams_lambda_cost(scenario, PRICES)
    batches = 1_000_000 * DAYS  # 30,416,667
    # dispatcher: 30,416,667 x $0.20/M = $6.0833; 30,416,667 x 0.05 s x 0.5 GB = 760,417 GB-s
    # x $0.0000166667 = $12.674
    assert line(cost, "Lambda requests (dispatcher)") == pytest.approx(batches / 1e6 * 0.2)
    assert line(cost, "Lambda duration (dispatcher)") == pytest.approx(
        batches * 0.05 * 0.5 * 0.0000166667
    )
    # SNS: 30,416,667 chunks x $0.50/M = $15.208
    assert line(cost, "SNS publishes") == pytest.approx(batches / 1e6 * 0.5)
    # SQS per queue: 2 x 30,416,667 chunks (delivery + receive) + 30,416,667 deletes
    # + 5 x 2,628,000 / 20 = 657,000 idle polls = 91,907,000; x 3 queues = 275,721,000
    # x $0.40/M = $110.29
    assert line(cost, "SQS fan-out queues") == pytest.approx(
        3 * (3 * batches + 657_000) / 1e6 * 0.4
    )
    # consumers: 3 x 30,416,667 = 91,250,000 invocations x $0.20/M = $18.25;
    # 3 x 30,416,667 x (100 + 1) ms = 9,216,250 s x 0.5 GB x $0.0000166667 = $76.80
    assert line(cost, "Lambda requests (consumers)") == pytest.approx(3 * batches / 1e6 * 0.2)
    assert line(cost, "Lambda duration (consumers)") == pytest.approx(
        3 * batches * 0.101 * 0.5 * 0.0000166667
    )
    # DLQ: 3 x 30,416,667 x 0.0001 = 9,125 on-failure records x 3 requests x $0.40/M
    assert line(cost, "SQS dead-letter queue") == pytest.approx(9_125 * 3 / 1e6 * 0.4)
    assert any("fan-out" in note for note in cost.notes)


def test_two_consumers_read_the_stream_directly() -> None:
    scenario = Scenario(Workload(writes_per_day=1_000_000, item_kb=2, consumers=2))
    components = [entry.component for entry in streams_lambda_cost(scenario, PRICES).lines]
    assert "SNS publishes" not in components
    assert "Lambda requests" in components


def test_provisioned_shards_by_bytes_records_and_shared_reads() -> None:
    # Bytes: 2e7 writes/day -> peak 462.96/s x 4,493.6 B = 1.984 MB/s -> 2 shards.
    big = traffic_of(Scenario(Workload(writes_per_day=20_000_000, item_kb=2)))
    assert provisioned_shards(big, consumers=1, efo=False) == 2
    # Records: 0.1 KB items (699.68 B mean), 1e8 writes/day -> peak 2,314.8 records/s -> 3
    # shards (bytes: 2,314.8 x 699.68 B = 1.545 MB/s -> 2).
    small = traffic_of(Scenario(Workload(writes_per_day=100_000_000, item_kb=0.1)))
    assert provisioned_shards(small, consumers=1, efo=False) == 3
    # Shared reads: the reference (0.992 MB/s) polled by 3 consumers needs 3 x 0.992 / 2
    # = 1.488 -> 2 shards; with EFO each consumer has its own 2 MB/s: 1 shard.
    reference = traffic_of(REFERENCE)
    assert provisioned_shards(reference, consumers=3, efo=False) == 2
    assert provisioned_shards(reference, consumers=3, efo=True) == 1


def test_retention_beyond_24_hours() -> None:
    # On-demand, 30 days, on the records' bytes (no 1 KB rounding is published for retention):
    # 1e7 writes/day x 4,493.6 B = 41.851 GB/day;
    # 6 days x 41.851 = 251.11 GB-months x $0.10 = $25.11; 23 days = 962.6 x $0.023 = $22.14
    scenario = Scenario(Workload(writes_per_day=10_000_000, item_kb=2, retention_days=30))
    daily_billed = 10_000_000 * 4_493.6 / GIB
    on_demand = on_demand_cost(scenario, PRICES, efo=False)
    assert line(on_demand, "retention 1-7 days") == pytest.approx(daily_billed * 6 * 0.10)
    assert line(on_demand, "retention beyond 7 days") == pytest.approx(daily_billed * 23 * 0.023)
    # Provisioned, 30 days: 1 shard x 730 h x $0.02 = $14.60 extended retention;
    # 1e7 x 4,493.6 B = 41.851 GB/day x 23 days = 962.6 GB-months x $0.023 = $22.14
    provisioned = provisioned_cost(scenario, PRICES, efo=False)
    assert line(provisioned, "retention 1-7 days") == pytest.approx(14.60)
    assert line(provisioned, "retention beyond 7 days") == pytest.approx(
        10_000_000 * 4_493.6 / GIB * 23 * 0.023
    )
    # 3 days, on-demand: 2 days x 41.851 GB = 83.70 GB-months x $0.10 = $8.37; nothing long-term
    three = Scenario(Workload(writes_per_day=10_000_000, item_kb=2, retention_days=3))
    short = on_demand_cost(three, PRICES, efo=False)
    assert line(short, "retention 1-7 days") == pytest.approx(daily_billed * 2 * 0.10)
    assert line(short, "retention beyond 7 days") == 0


def test_fargate_tasks_follow_the_peak_rate() -> None:
    # 1e8 writes/day -> peak 2,314.8 records/s / 1,000 per task -> 3 tasks per consumer;
    # 2 consumers -> 2 x 3 x 730 h x 0.0123425 = $54.07
    scenario = Scenario(Workload(writes_per_day=100_000_000, item_kb=1, consumers=2))
    cost = provisioned_cost(scenario, PRICES, efo=True)
    assert dict(cost.sizing)["tasks per consumer"] == 3
    assert line(cost, "Fargate tasks") == pytest.approx(2 * 3 * 730 * 0.0123425)
    # A faster task: 5,000 records/s -> min_tasks (2) wins.
    faster = Scenario(scenario.workload, service=ServiceSizing(task_records_per_s=5_000))
    assert dict(provisioned_cost(faster, PRICES, efo=True).sizing)["tasks per consumer"] == 2


def test_polling_beyond_five_consumers_is_not_viable() -> None:
    scenario = Scenario(Workload(writes_per_day=1_000_000, item_kb=1, consumers=6))
    costs = {cost.design: cost for cost in cost_all(scenario, PRICES)}
    assert not costs[Design.KINESIS_PROVISIONED_POLLING].viable
    assert not costs[Design.KINESIS_ON_DEMAND_POLLING].viable
    assert costs[Design.KINESIS_PROVISIONED_EFO].viable
    assert any("enhanced fan-out" in note for note in costs[Design.KINESIS_ON_DEMAND_POLLING].notes)


def test_more_than_twenty_efo_consumers_is_not_viable() -> None:
    scenario = Scenario(Workload(writes_per_day=1_000_000, item_kb=1, consumers=21))
    costs = {cost.design: cost for cost in cost_all(scenario, PRICES)}
    assert not costs[Design.KINESIS_ON_DEMAND_EFO].viable
    assert costs[Design.STREAMS_LAMBDA].viable
