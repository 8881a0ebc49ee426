"""This project's consumer service, per consuming application: Fargate tasks, the lease table
and the dead-letter queue. The same for every Kinesis design; only the shard count differs.
Formulas: docs/costs.md, "This service on Fargate", "Lease table" and "SQS dead-letter queue".
"""

from __future__ import annotations

import math

from consumer.compare.costs.breakdown import CostLine, count, priced, usd
from consumer.compare.costs.prices import PriceSheet
from consumer.compare.costs.scenario import Scenario
from consumer.compare.costs.traffic import Traffic, busy_windows_per_s
from consumer.compare.costs.units import HOURS_PER_MONTH, KIB, SECONDS_PER_MONTH, ceil_count

READ_UNIT_BYTES = 4 * KIB
SQS_CHUNK_BYTES = 64 * KIB


def tasks_needed(scenario: Scenario, traffic: Traffic) -> int:
    """Fargate tasks per consuming application, sized for the peak rate."""
    service = scenario.service
    by_load = ceil_count(traffic.peak_writes_per_s / service.task_records_per_s)
    return max(service.min_tasks, by_load)


def service_lines(
    scenario: Scenario, traffic: Traffic, prices: PriceSheet, shards: int
) -> list[CostLine]:
    """Fargate, lease-table and DLQ lines for all consumers of a stream with `shards` shards."""
    service = scenario.service
    consumers = scenario.workload.consumers
    tasks = tasks_needed(scenario, traffic)
    vcpu_price = prices.price("fargate_vcpu_hour")
    gb_price = prices.price("fargate_gb_hour")
    task_hour = service.task_vcpu * vcpu_price + service.task_memory_gb * gb_price
    task_hours = consumers * tasks * HOURS_PER_MONTH

    heartbeats_per_s = tasks / service.heartbeat_interval_s
    checkpoints_per_s = shards * busy_windows_per_s(
        traffic.writes_per_s / shards, service.checkpoint_interval_s
    )
    writes = consumers * (heartbeats_per_s + checkpoints_per_s) * SECONDS_PER_MONTH

    units_per_scan = math.ceil((shards + tasks) * service.lease_item_bytes / READ_UNIT_BYTES)
    scans_per_s = tasks / service.scan_interval_s
    reads = consumers * scans_per_s * units_per_scan * SECONDS_PER_MONTH

    chunks = traffic.per_record(SQS_CHUNK_BYTES)
    failed = consumers * traffic.records_per_month * scenario.failure_rate
    apps = f"{consumers} app{'s' if consumers > 1 else ''} x "
    return [
        CostLine(
            component="Fargate tasks",
            usd_per_month=task_hours * task_hour,
            quantity=task_hours,
            unit="task-hours",
            price_key="fargate_vcpu_hour+fargate_gb_hour",
            basis=(
                f"{apps}{tasks} tasks x 730 h x ({service.task_vcpu:g} vCPU x {usd(vcpu_price)}"
                f" + {service.task_memory_gb:g} GB x {usd(gb_price)})"
            ),
        ),
        priced(
            prices,
            "dynamodb_on_demand_writes_million",
            "lease table writes",
            writes,
            "write request units",
            f"{apps}({count(heartbeats_per_s)} heartbeats/s + {count(checkpoints_per_s)} "
            f"checkpoints/s) = {count(writes)}",
            per_million=True,
        ),
        priced(
            prices,
            "dynamodb_on_demand_reads_million",
            "lease table reads",
            reads,
            "read request units",
            f"{apps}{count(scans_per_s)} scans/s x {units_per_scan} units "
            f"({shards} leases + {tasks} workers) = {count(reads)}",
            per_million=True,
        ),
        dlq_line(failed, 2 * chunks + 1, prices, "records with their payload"),
    ]


def dlq_line(
    failed_records: float, requests_per_record: float, prices: PriceSheet, what: str
) -> CostLine:
    """The SQS dead-letter queue both designs park failed records in: requests to park
    `failed_records` a month and later drain them (receive + delete).

    `requests_per_record` counts SQS's billing: each 64 KB chunk of a payload is a request,
    so a message is sent in n chunks, received in n and deleted in 1: 2n + 1.
    """
    return priced(
        prices,
        "sqs_requests_million",
        "SQS dead-letter queue",
        failed_records * requests_per_record,
        "requests",
        f"{count(failed_records)} failed records ({what}) x {count(requests_per_record)} "
        "requests (send, receive, delete)",
        per_million=True,
    )
