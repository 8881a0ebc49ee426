"""`consumer backfill --dry-run`: what a backfill would read, write, take and cost, from
DescribeTable (ItemCount and TableSizeBytes, refreshed about every six hours) and the price sheet
of `consumer compare cost`: a Scan costs half a read unit per 4 KB; an export is priced per GB
of table size; replication is one PutItem per item, ceil(item size / 1 KB) write units; search
and audit have no per-request price. Duration: read units / --max-read-units, or items at the
measured rate per worker (an export adds its own time, which AWS does not promise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from consumer.compare.costs.prices import PriceSheet

# `make bench` (backfill_items_per_s_scan, one worker, moto, 1 KB items, null sink): a
# conservative round figure for the duration estimate.
ITEMS_PER_S_PER_WORKER = 1500.0
_GB = 1_000_000_000


@dataclass(frozen=True)
class BackfillEstimate:
    table: str
    source: str
    items: int
    size_bytes: int
    read_units: float
    duration_s: float
    read_usd: float
    export_usd: float
    write_units: int
    write_usd: float

    @property
    def total_usd(self) -> float:
        return self.read_usd + self.export_usd + self.write_usd


def estimate_backfill(
    table: dict[str, Any],
    *,
    source: str,
    pipelines: tuple[str, ...],
    workers: int,
    max_read_units: float | None,
    prices: PriceSheet,
) -> BackfillEstimate:
    items = int(table.get("ItemCount", 0))
    size = int(table.get("TableSizeBytes", 0))
    sheet = prices.prices
    read_units = math.ceil(size / 4096) * 0.5 if source == "scan" else 0.0
    read_usd = read_units / 1e6 * sheet.dynamodb_on_demand_reads_million.value
    export_usd = size / _GB * sheet.dynamodb_export_gb.value if source == "export" else 0.0
    write_units = 0
    if "replication" in pipelines and items:
        write_units = items * max(1, math.ceil(size / items / 1024))
    write_usd = write_units / 1e6 * sheet.dynamodb_on_demand_writes_million.value
    apply_s = items / (ITEMS_PER_S_PER_WORKER * max(1, workers))
    read_s = read_units / max_read_units if max_read_units and source == "scan" else 0.0
    return BackfillEstimate(
        table=str(table.get("TableName", "")),
        source=source,
        items=items,
        size_bytes=size,
        read_units=read_units,
        duration_s=max(apply_s, read_s),
        read_usd=read_usd,
        export_usd=export_usd,
        write_units=write_units,
        write_usd=write_usd,
    )


def render_estimate(estimate: BackfillEstimate) -> list[str]:
    return [
        f"table {estimate.table}: {estimate.items} items, {estimate.size_bytes} bytes "
        "(DescribeTable, refreshed about every 6 h)",
        f"source {estimate.source}: "
        + (
            f"{estimate.read_units:.0f} read units (Scan, eventually consistent), "
            f"${estimate.read_usd:.4f}"
            if estimate.source == "scan"
            else f"export ${estimate.export_usd:.4f} (per GB of table size)"
        ),
        f"replication writes: {estimate.write_units} write units, ${estimate.write_usd:.4f}",
        f"estimated duration: {estimate.duration_s:.0f} s (reading and applying; an export "
        "adds its own time)",
        f"estimated cost: ${estimate.total_usd:.4f}",
    ]
