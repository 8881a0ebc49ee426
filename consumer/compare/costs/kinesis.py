"""The four Kinesis designs: on-demand or provisioned stream, read with enhanced fan-out (EFO)
or shared polling, by this project's consumer service on Fargate. Formulas: docs/costs.md,
"Kinesis on-demand" and "Kinesis provisioned" (on-demand shards are not billed, but they size
the lease table)."""

from __future__ import annotations

from dataclasses import replace

from consumer.compare.costs.breakdown import CostLine, Design, DesignCost, count, priced, usd
from consumer.compare.costs.consumer_service import service_lines, tasks_needed
from consumer.compare.costs.prices import PriceSheet
from consumer.compare.costs.scenario import Scenario
from consumer.compare.costs.traffic import Traffic, traffic_of
from consumer.compare.costs.units import GIB, HOURS_PER_MONTH, KIB, MIB, ceil_count

# Per shard: 1 MB/s and 1,000 records/s in; 2 MB/s out (shared by pollers, per EFO consumer).
SHARD_WRITE_MIB_PER_S = 1.0
SHARD_WRITE_RECORDS_PER_S = 1_000.0
SHARD_READ_MIB_PER_S = 2.0
# On-demand: initial write capacity of 4 shards; capacity kept for 2x the peak.
ON_DEMAND_MIN_SHARDS = 4
ON_DEMAND_PEAK_MULTIPLE = 2.0
# GetRecords: 5 calls/s per shard shared by the pollers; beyond ~5, each polls < 1/s.
POLLING_CALLS_PER_S = 5
MAX_POLLING_CONSUMERS = 5
# RegisterStreamConsumer: 20 EFO consumers per stream (standard).
MAX_EFO_CONSUMERS = 20
# A stream's maximum record size: 1 MiB by default, up to 10 MiB with UpdateMaxRecordSize
# (Kinesis Developer Guide, "Handle large records"); meant for intermittent large records.
DEFAULT_MAX_RECORD_BYTES = 1 * MIB
LARGEST_MAX_RECORD_BYTES = 10 * MIB
NO_EXTENDED_RETENTION = "none: retention is the included 24 h"
NO_LONG_TERM_RETENTION = "none: retention is at most 7 days"

_ON_DEMAND = {True: Design.KINESIS_ON_DEMAND_EFO, False: Design.KINESIS_ON_DEMAND_POLLING}
_PROVISIONED = {True: Design.KINESIS_PROVISIONED_EFO, False: Design.KINESIS_PROVISIONED_POLLING}


def provisioned_shards(traffic: Traffic, consumers: int, efo: bool) -> int:
    """Shards a provisioned stream needs for the peak write and read rates."""
    read_mib = traffic.peak_mib_per_s * (1 if efo else consumers)
    need = max(
        traffic.peak_mib_per_s / SHARD_WRITE_MIB_PER_S,
        traffic.peak_writes_per_s / SHARD_WRITE_RECORDS_PER_S,
        read_mib / SHARD_READ_MIB_PER_S,
    )
    return max(1, ceil_count(need))


def on_demand_shards(traffic: Traffic) -> int:
    """Shards an on-demand stream keeps for this peak (for the lease table only)."""
    need = ON_DEMAND_PEAK_MULTIPLE * max(
        traffic.peak_mib_per_s / SHARD_WRITE_MIB_PER_S,
        traffic.peak_writes_per_s / SHARD_WRITE_RECORDS_PER_S,
    )
    return max(ON_DEMAND_MIN_SHARDS, ceil_count(need))


def _cdc_line(traffic: Traffic, prices: PriceSheet) -> CostLine:
    return priced(
        prices,
        "dynamodb_cdc_units_million",
        "DynamoDB change data capture",
        traffic.records_per_month * traffic.cdc_units_per_write,
        "change data capture units",
        f"{count(traffic.records_per_month)} writes x {traffic.cdc_units_per_write} units "
        "(1 per KB of the larger image, rounded up)",
        per_million=True,
    )


def _notes(scenario: Scenario, traffic: Traffic, efo: bool) -> tuple[list[str], bool]:
    consumers = scenario.workload.consumers
    notes: list[str] = []
    viable = True
    if efo and consumers > MAX_EFO_CONSUMERS:
        viable = False
        notes.append(
            f"not viable: a stream takes at most {MAX_EFO_CONSUMERS} enhanced fan-out "
            f"consumers, {consumers} asked"
        )
    if not efo:
        polls = POLLING_CALLS_PER_S / consumers
        if consumers > MAX_POLLING_CONSUMERS:
            viable = False
            notes.append(
                f"not viable: {consumers} pollers share 5 GetRecords calls/s per shard, so each "
                f"polls {polls:.2g} times/s (propagation over 1 s); use enhanced fan-out"
            )
        else:
            notes.append(
                f"each of {consumers} poller(s) may call GetRecords {polls:.2g} times/s per shard "
                "(propagation ~200 ms with 1 consumer, ~1 s with 5; EFO ~70 ms)"
            )
    if traffic.two_image_record_bytes > LARGEST_MAX_RECORD_BYTES:
        # Only with an extreme --json-overhead: a 400 KB item's two images are ~1 MiB.
        viable = False
        notes.append(
            f"not viable: updates make ~{traffic.two_image_record_bytes / KIB:,.0f} KB "
            "records, over Kinesis' 10 MiB record limit: DynamoDB skips them "
            "(FailedToReplicateRecordCount)"
        )
    elif traffic.two_image_record_bytes > DEFAULT_MAX_RECORD_BYTES:
        # Within 10 MiB: a stream setting to change, not a design that cannot work.
        notes.append(
            f"updates make ~{traffic.two_image_record_bytes / KIB:,.0f} KB records, over a "
            "stream's default 1 MiB maximum record size: raise it with UpdateMaxRecordSize "
            "(up to 10 MiB; Kinesis is built for such records as occasional traffic), or "
            "DynamoDB skips them (FailedToReplicateRecordCount)"
        )
    return notes, viable


def _read_line(prices: PriceSheet, key: str, component: str, consumers: int, gb: float) -> CostLine:
    basis = f"{consumers} consumer(s) x {count(gb)} GB"
    return priced(prices, key, component, consumers * gb, "GB", basis)


def _design_cost(
    scenario: Scenario,
    traffic: Traffic,
    prices: PriceSheet,
    design: Design,
    stream_lines: list[CostLine],
    shards: int,
    efo: bool,
    long_retention_key: str,
) -> DesignCost:
    """The stream's lines with retention beyond 7 days (billed per GB-month on both stream
    kinds), change data capture and the consumer service added."""
    days = scenario.workload.retention_days
    daily_gb = _daily_gb(scenario, traffic)
    lines = [
        *stream_lines,
        _retention_gb(
            prices,
            long_retention_key,
            "retention beyond 7 days",
            daily_gb * max(days - 7.0, 0.0),
            f"{count(daily_gb)} GB/day x {days - 7.0:g} days" if days > 7.0 else None,
            NO_LONG_TERM_RETENTION,
        ),
        _cdc_line(traffic, prices),
        *service_lines(scenario, traffic, prices, shards),
    ]
    notes, viable = _notes(scenario, traffic, efo)
    shard_label = "shards (estimated)" if design in _ON_DEMAND.values() else "shards"
    return DesignCost(
        design=design,
        lines=tuple(lines),
        sizing=((shard_label, shards), ("tasks per consumer", tasks_needed(scenario, traffic))),
        notes=tuple(notes),
        viable=viable,
    )


def _daily_gb(scenario: Scenario, traffic: Traffic) -> float:
    return scenario.workload.writes_per_day * traffic.mean_record_bytes / GIB


def _retention_gb(
    prices: PriceSheet, key: str, component: str, gb: float, basis: str | None, none: str
) -> CostLine:
    """GB-months kept at the price under `key`; with no `basis`, none are billed (`none` says
    why)."""
    line = priced(prices, key, component, gb, "GB-months", basis or none)
    return line if basis is not None else replace(line, basis=none)


def on_demand_cost(scenario: Scenario, prices: PriceSheet, efo: bool) -> DesignCost:
    """A Kinesis on-demand stream read with EFO (`efo`) or shared polling."""
    traffic = traffic_of(scenario)
    billed_gb = traffic.records_per_month * traffic.billed_kib_per_record * KIB / GIB
    read_key = "kinesis_on_demand_efo_read_gb" if efo else "kinesis_on_demand_read_gb"
    # Reads and retention count the records' bytes: AWS publishes the 1 KB rounding for
    # Data-In only (docs/costs.md), so rounding them too would be a guess (up to +13%).
    daily_gb = _daily_gb(scenario, traffic)
    days = scenario.workload.retention_days
    lines = [
        priced(
            prices,
            "kinesis_on_demand_stream_hour",
            "stream hours",
            HOURS_PER_MONTH,
            "stream-hours",
            "1 stream x 730 h",
        ),
        priced(
            prices,
            "kinesis_on_demand_ingest_gb",
            "ingest",
            billed_gb,
            "GB",
            f"{count(traffic.records_per_month)} records x "
            f"{count(traffic.billed_kib_per_record)} KB (each rounded up to 1 KB) = "
            f"{count(billed_gb)} GB",
        ),
        _read_line(
            prices,
            read_key,
            "retrieval (EFO)" if efo else "retrieval (shared)",
            scenario.workload.consumers,
            traffic.bytes_per_month / GIB,
        ),
        _retention_gb(
            prices,
            "kinesis_on_demand_retention_7d_gb_month",
            "retention 1-7 days",
            daily_gb * (min(days, 7.0) - 1.0),
            f"{count(daily_gb)} GB/day x {min(days, 7.0) - 1.0:g} days" if days > 1.0 else None,
            NO_EXTENDED_RETENTION,
        ),
    ]
    shards = on_demand_shards(traffic)
    long_key = "kinesis_on_demand_retention_long_gb_month"
    return _design_cost(scenario, traffic, prices, _ON_DEMAND[efo], lines, shards, efo, long_key)


def provisioned_cost(scenario: Scenario, prices: PriceSheet, efo: bool) -> DesignCost:
    """A Kinesis provisioned stream, sized for the peak, read with EFO or shared polling."""
    traffic = traffic_of(scenario)
    consumers = scenario.workload.consumers
    shards = provisioned_shards(traffic, consumers, efo)
    shard_hours = shards * HOURS_PER_MONTH
    data_gb = traffic.bytes_per_month / GIB
    days = scenario.workload.retention_days
    extended_price = prices.price("kinesis_extended_retention_shard_hour")
    extended_hours = shard_hours if days > 1.0 else 0.0
    lines = [
        priced(
            prices,
            "kinesis_shard_hour",
            "shard hours",
            shard_hours,
            "shard-hours",
            f"{shards} shard(s) x 730 h",
        ),
        priced(
            prices,
            "kinesis_put_payload_units_million",
            "ingest (PUT payload units)",
            traffic.records_per_month * traffic.put_payload_units_per_record,
            "PUT payload units",
            f"{count(traffic.records_per_month)} records x "
            f"{count(traffic.put_payload_units_per_record)} units "
            "(25 KB each, rounded up per record)",
            per_million=True,
        ),
    ]
    if efo:
        lines += [
            priced(
                prices,
                "kinesis_efo_consumer_shard_hour",
                "EFO consumer-shard hours",
                consumers * shard_hours,
                "consumer-shard-hours",
                f"{consumers} consumer(s) x {shards} shard(s) x 730 h",
            ),
            _read_line(prices, "kinesis_efo_read_gb", "retrieval (EFO)", consumers, data_gb),
        ]
    else:
        lines.append(
            CostLine(
                component="retrieval (shared)",
                usd_per_month=0.0,
                quantity=consumers * data_gb,
                unit="GB",
                price_key="kinesis_shard_hour",
                basis="included in shard hours (GetRecords, 2 MB/s per shard shared)",
            )
        )
    lines.append(
        CostLine(
            component="retention 1-7 days",
            usd_per_month=extended_hours * extended_price,
            quantity=extended_hours,
            unit="shard-hours",
            price_key="kinesis_extended_retention_shard_hour",
            basis=(
                f"{shards} shard(s) x 730 h x {usd(extended_price)} (retention {days:g} days)"
                if days > 1.0
                else NO_EXTENDED_RETENTION
            ),
        )
    )
    long_key = "kinesis_long_term_retention_gb_month"
    design = _PROVISIONED[efo]
    return _design_cost(scenario, traffic, prices, design, lines, shards, efo, long_key)
