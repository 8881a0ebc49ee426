"""What a scenario's writes become: change records, their sizes and their rates (docs/costs.md,
"Record size"). Quantities rounded per record (Kinesis' 1 KB and 25 KB units) are rounded for
each record type first and then averaged over the update/insert-delete mix."""

from __future__ import annotations

import math
from dataclasses import dataclass

from consumer.compare.costs.scenario import Scenario
from consumer.compare.costs.units import DAYS_PER_MONTH, KIB, MIB, SECONDS_PER_DAY

PUT_PAYLOAD_UNIT_BYTES = 25 * KIB


@dataclass(frozen=True)
class Traffic:
    """Derived rates and sizes; averages unless the name says peak."""

    writes_per_s: float
    peak_writes_per_s: float
    records_per_month: float
    update_share: float
    one_image_record_bytes: float
    two_image_record_bytes: float
    # DynamoDB change data capture units per write: ceil(item KB) (the larger image's size;
    # old and new images are assumed equal).
    cdc_units_per_write: int
    # DynamoDB write capacity units per write (1 per KB, rounded up): sizes partitions.
    write_units_per_write: int

    def mix(self, one_image: float, two_images: float) -> float:
        """Mean of a per-record quantity over the insert/delete vs update mix."""
        return self.update_share * two_images + (1.0 - self.update_share) * one_image

    @property
    def mean_record_bytes(self) -> float:
        return self.mix(self.one_image_record_bytes, self.two_image_record_bytes)

    @property
    def bytes_per_month(self) -> float:
        return self.records_per_month * self.mean_record_bytes

    @property
    def peak_mib_per_s(self) -> float:
        return self.peak_writes_per_s * self.mean_record_bytes / MIB

    def per_record(self, unit_bytes: float) -> float:
        """Units of `unit_bytes` per record, each record rounded up, averaged over the mix."""
        return self.mix(
            math.ceil(self.one_image_record_bytes / unit_bytes),
            math.ceil(self.two_image_record_bytes / unit_bytes),
        )

    @property
    def billed_kib_per_record(self) -> float:
        """On-demand ingest: each record rounded up to 1 KB, averaged over the mix."""
        return self.per_record(KIB)

    @property
    def put_payload_units_per_record(self) -> float:
        """Provisioned ingest: 25 KB units, each record rounded up, averaged over the mix."""
        return self.per_record(PUT_PAYLOAD_UNIT_BYTES)


def traffic_of(scenario: Scenario) -> Traffic:
    """The records `scenario`'s writes produce (one record per write)."""
    workload = scenario.workload
    image = workload.item_kb * KIB * scenario.records.json_overhead
    envelope = scenario.records.envelope_bytes
    writes_per_s = workload.writes_per_day / SECONDS_PER_DAY
    return Traffic(
        writes_per_s=writes_per_s,
        peak_writes_per_s=writes_per_s * workload.peak_factor,
        records_per_month=workload.writes_per_day * DAYS_PER_MONTH,
        update_share=workload.update_share,
        one_image_record_bytes=envelope + image,
        two_image_record_bytes=envelope + 2 * image,
        cdc_units_per_write=math.ceil(workload.item_kb),
        write_units_per_write=math.ceil(workload.item_kb),
    )


def busy_windows_per_s(records_per_s: float, window_s: float) -> float:
    """Windows of `window_s` per second that see at least one record, for Poisson arrivals.

    (1 - e^(-rate x window)) / window: about `records_per_s` when records are rare (each its
    own window), and 1 / window when every window has records. Increasing in the rate.
    """
    if records_per_s <= 0:
        return 0.0
    return -math.expm1(-records_per_s * window_s) / window_s
