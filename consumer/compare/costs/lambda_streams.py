"""The baseline: the table's DynamoDB stream read by Lambda event source mappings, with the
SNS/SQS fan-out beyond 2 consumers (DynamoDB Streams allows 2 readers per shard). Formulas:
docs/costs.md, "DynamoDB Streams + Lambda": stream shards from the table's partitions, the
ParallelizationFactor a shard's peak needs, batches from Lambda's 4 polls a second per shard."""

from __future__ import annotations

import math
from dataclasses import dataclass

from consumer.compare.costs.breakdown import CostLine, Design, DesignCost, count, priced, usd
from consumer.compare.costs.consumer_service import dlq_line
from consumer.compare.costs.prices import PriceSheet
from consumer.compare.costs.scenario import Scenario
from consumer.compare.costs.traffic import Traffic, busy_windows_per_s, traffic_of
from consumer.compare.costs.units import KIB, MIB, SECONDS_PER_MONTH, ceil_count

POLLS_PER_S = 4.0
MAX_DIRECT_READERS = 2
LAMBDA_PAYLOAD_BYTES = 6 * MIB
PARTITION_WRITE_UNITS_PER_S = 1_000.0
PARTITION_GB = 10.0
MIN_PARTITIONS = 4
SNS_MESSAGE_BYTES = 256 * KIB
CHUNK_BYTES = 64 * KIB
SQS_IDLE_POLLERS = 5
SQS_LONG_POLL_S = 20.0
# One on-failure record (metadata of the failed batch) sent, received, deleted.
DLQ_REQUESTS_PER_RECORD = 3.0
# Concurrent batches per shard an event source mapping allows (ParallelizationFactor).
MAX_PARALLELIZATION_FACTOR = 10


@dataclass(frozen=True)
class StreamBatches:
    """How Lambda cuts the stream into invocations (averages)."""

    shards: int
    batch_size: int
    batches_per_s: float
    records_per_batch: float


def stream_shards(scenario: Scenario, traffic: Traffic) -> int:
    """DynamoDB stream shards: the override, or one per estimated table partition."""
    if scenario.lambdas.stream_shards is not None:
        return scenario.lambdas.stream_shards
    write_units = traffic.peak_writes_per_s * traffic.write_units_per_write
    return max(
        MIN_PARTITIONS,
        ceil_count(write_units / PARTITION_WRITE_UNITS_PER_S),
        ceil_count(scenario.workload.table_gb / PARTITION_GB),
    )


def stream_batches(scenario: Scenario, traffic: Traffic) -> StreamBatches:
    """Batches per second Lambda invokes with, over all shards."""
    shards = stream_shards(scenario, traffic)
    by_payload = math.floor(LAMBDA_PAYLOAD_BYTES / traffic.mean_record_bytes)
    batch_size = max(1, min(scenario.lambdas.batch_size, by_payload))
    per_shard = traffic.writes_per_s / shards
    per_shard_batches = max(per_shard / batch_size, busy_windows_per_s(per_shard, 1 / POLLS_PER_S))
    batches = shards * per_shard_batches
    return StreamBatches(
        shards=shards,
        batch_size=batch_size,
        batches_per_s=batches,
        records_per_batch=traffic.writes_per_s / batches,
    )


def _parallelization(
    scenario: Scenario, traffic: Traffic, batches: StreamBatches
) -> tuple[int, str | None]:
    """The ParallelizationFactor the function reading the stream needs at the peak rate, and a
    note when it is over 1 (not viable over Lambda's maximum).

    The reader is each consumer's function (up to 2 consumers) or the fan-out's dispatcher;
    the fan-out's consumer functions read SQS, which has no per-shard limit.
    """
    sizing = scenario.lambdas
    if scenario.workload.consumers <= MAX_DIRECT_READERS:
        batch_ms = sizing.lambda_batch_ms + sizing.lambda_record_ms * batches.batch_size
    else:
        batch_ms = sizing.dispatcher_ms
    per_batch = batches.batch_size / (batch_ms / 1000)
    peak_per_shard = traffic.peak_writes_per_s / batches.shards
    factor = max(1, ceil_count(peak_per_shard / per_batch))
    carries = (
        f"one batch of {batches.batch_size} at a time ({batch_ms:g} ms each) carries "
        f"{per_batch:,.0f}/s"
    )
    peak = f"{peak_per_shard:,.0f} records/s per stream shard at peak"
    if factor > MAX_PARALLELIZATION_FACTOR:
        return factor, (
            f"not viable: {peak} needs ParallelizationFactor {factor}, over Lambda's maximum of "
            f"{MAX_PARALLELIZATION_FACTOR} ({carries}): raise --batch-size or shorten the "
            "function's duration"
        )
    if factor > 1:
        return factor, (
            f"{peak}; {carries}: set ParallelizationFactor {factor} on the event source "
            "mapping (order per item is kept)"
        )
    return factor, None


def _units(batch_bytes: float, unit_bytes: float) -> float:
    return max(1.0, batch_bytes / unit_bytes + 0.5)


def streams_lambda_cost(scenario: Scenario, prices: PriceSheet) -> DesignCost:
    """DynamoDB Streams + Lambda, with the SNS/SQS fan-out when more than 2 consumers."""
    traffic = traffic_of(scenario)
    sizing = scenario.lambdas
    consumers = scenario.workload.consumers
    batches = stream_batches(scenario, traffic)
    factor, factor_note = _parallelization(scenario, traffic, batches)
    batches_month = batches.batches_per_s * SECONDS_PER_MONTH
    records = traffic.records_per_month
    memory_gb = sizing.lambda_memory_mb / 1024

    lines = [
        CostLine(
            component="stream reads",
            usd_per_month=0.0,
            quantity=0.0,
            unit="read request units",
            price_key="dynamodb_streams_reads_100k",
            basis=(
                "GetRecords by Lambda are free "
                f"(others: {usd(prices.price('dynamodb_streams_reads_100k'))} per 100k)"
            ),
        )
    ]
    notes = [] if factor_note is None else [factor_note]

    def function_lines(label: str, invocations: float, milliseconds: float) -> list[CostLine]:
        gb_seconds = milliseconds / 1000 * memory_gb
        return [
            priced(
                prices,
                "lambda_requests_million",
                f"Lambda requests{label}",
                invocations,
                "requests",
                f"{count(invocations)} invocations",
                per_million=True,
            ),
            priced(
                prices,
                "lambda_gb_second",
                f"Lambda duration{label}",
                gb_seconds,
                "GB-seconds",
                f"{count(milliseconds / 1000)} s x {sizing.lambda_memory_mb} MB = "
                f"{count(gb_seconds)} GB-s",
            ),
        ]

    if consumers <= MAX_DIRECT_READERS:
        invocations = consumers * batches_month
        milliseconds = consumers * (
            batches_month * sizing.lambda_batch_ms + records * sizing.lambda_record_ms
        )
        lines += function_lines("", invocations, milliseconds)
    else:
        batch_bytes = batches.records_per_batch * traffic.mean_record_bytes
        chunks = batches_month * _units(batch_bytes, CHUNK_BYTES)
        messages = batches_month * _units(batch_bytes, SNS_MESSAGE_BYTES)
        idle = SQS_IDLE_POLLERS * SECONDS_PER_MONTH / SQS_LONG_POLL_S
        sqs_requests = consumers * (2 * chunks + messages + idle)
        notes.append(
            f"{consumers} consumers > {MAX_DIRECT_READERS} readers per stream shard: fan-out "
            f"(dispatcher function -> SNS -> {consumers} SQS queues -> {consumers} functions)"
        )
        if traffic.two_image_record_bytes > SNS_MESSAGE_BYTES:
            notes.append(
                "some records exceed SNS's 256 KB message limit: the fan-out needs a claim "
                "check (payload in S3), not priced here"
            )
        lines += function_lines(
            " (dispatcher)", batches_month, batches_month * sizing.dispatcher_ms
        )
        lines += [
            priced(
                prices,
                "sns_publishes_million",
                "SNS publishes",
                chunks,
                "requests (64 KB chunks)",
                f"{count(batches_month)} batches x {count(chunks / batches_month)} chunks "
                "of 64 KB",
                per_million=True,
            ),
            priced(
                prices,
                "sqs_requests_million",
                "SQS fan-out queues",
                sqs_requests,
                "requests",
                f"{consumers} queues x (2 x {count(chunks)} chunks + {count(messages)} "
                f"deletes + {count(idle)} idle polls)",
                per_million=True,
            ),
        ]
        lines += function_lines(
            " (consumers)",
            consumers * messages,
            consumers * (messages * sizing.lambda_batch_ms + records * sizing.lambda_record_ms),
        )
    failed = consumers * records * scenario.failure_rate
    lines.append(dlq_line(failed, DLQ_REQUESTS_PER_RECORD, prices, "on-failure records"))
    return DesignCost(
        design=Design.STREAMS_LAMBDA,
        lines=tuple(lines),
        sizing=(
            ("stream shards", batches.shards),
            ("batches per second", batches.batches_per_s),
            ("records per batch", batches.records_per_batch),
            ("parallelization factor", factor),
        ),
        notes=tuple(notes),
        viable=factor <= MAX_PARALLELIZATION_FACTOR,
    )
