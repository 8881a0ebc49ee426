"""The inputs of a cost comparison, grouped by concern, each validated on construction.

Every field name is also the CLI option's name (`writes_per_day` is `--writes-per-day`), so a
`CostInputError` can name the option. Defaults are documented in docs/costs.md, with where each
number comes from. Constructing any of these does no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from consumer.compare.costs.errors import CostInputError

# DynamoDB's item size limit: no change record can carry a larger image.
MAX_ITEM_KB = 400.0
# Kinesis retention: 24 h to 8,760 h.
MIN_RETENTION_DAYS = 1.0
MAX_RETENTION_DAYS = 365.0
# Fargate's task sizes (vCPU); memory must fit the size's range (not checked here).
FARGATE_VCPU = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
# The writes/day the model is built for: 1e11 is 1.16 M writes/s on average, 30x DynamoDB's
# default per-table quota (40,000 writes/s) and thousands of shards; beyond that a price list
# says nothing useful (quotas, partitioning and the design need a review first).
MAX_WRITES_PER_DAY = 1e11


def _finite(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CostInputError(name, f"must be a finite number, got {value!r}")


def _positive(name: str, value: float) -> None:
    _finite(name, value)
    if value <= 0:
        raise CostInputError(name, f"must be greater than 0, got {value:g}")


def _at_least(name: str, value: float, low: float) -> None:
    _finite(name, value)
    if value < low:
        raise CostInputError(name, f"must be at least {low:g}, got {value:g}")


def _between(name: str, value: float, low: float, high: float) -> None:
    _finite(name, value)
    if not low <= value <= high:
        raise CostInputError(name, f"must be between {low:g} and {high:g}, got {value:g}")


def _whole(name: str, value: int, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CostInputError(name, f"must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise CostInputError(name, f"must be {bound}, got {value}")


@dataclass(frozen=True)
class Workload:
    """The table's change traffic and what the consumers need of it (docs/costs.md).

    `item_kb` is DynamoDB's measure (old and new images assumed the same size); `consumers`
    are independent applications; capacity (shards, partitions, tasks) is sized for
    `peak_factor` x the average, usage is billed at the average; `table_gb` sizes the
    partition estimate (10 GB per partition).
    """

    writes_per_day: float
    item_kb: float
    update_share: float = 0.5
    consumers: int = 1
    retention_days: float = 1.0
    peak_factor: float = 2.0
    table_gb: float = 0.0

    def __post_init__(self) -> None:
        _positive("writes_per_day", self.writes_per_day)
        if self.writes_per_day > MAX_WRITES_PER_DAY:
            raise CostInputError(
                "writes_per_day",
                f"must be at most {MAX_WRITES_PER_DAY:g} (supported range: more than 0 up to "
                f"{MAX_WRITES_PER_DAY:g} writes/day), got {self.writes_per_day:g}",
            )
        _positive("item_kb", self.item_kb)
        if self.item_kb > MAX_ITEM_KB:
            raise CostInputError(
                "item_kb", f"must be at most {MAX_ITEM_KB:g} (DynamoDB's item limit)"
            )
        _between("update_share", self.update_share, 0.0, 1.0)
        _whole("consumers", self.consumers, 1)
        _between("retention_days", self.retention_days, MIN_RETENTION_DAYS, MAX_RETENTION_DAYS)
        _at_least("peak_factor", self.peak_factor, 1.0)
        _at_least("table_gb", self.table_gb, 0.0)


@dataclass(frozen=True)
class RecordShape:
    """How big a change record is, from the item size: `json_overhead` is an image's
    DynamoDB-JSON size / the item's size, `envelope_bytes` everything but the images plus the
    Kinesis partition key (docs/costs.md, "Record size", says where the defaults come from)."""

    json_overhead: float = 1.3
    envelope_bytes: float = 500.0

    def __post_init__(self) -> None:
        _at_least("json_overhead", self.json_overhead, 1.0)
        _at_least("envelope_bytes", self.envelope_bytes, 0.0)


@dataclass(frozen=True)
class ServiceSizing:
    """This project's consumer service on ECS Fargate, per consuming application.

    `task_records_per_s` is an estimate from the benchmarks (docs/costs.md, "This service on
    Fargate": replace it with your own measurement); `min_tasks` are kept for availability;
    the lease intervals are this project's defaults (checkpoints.LeaseSettings).
    """

    task_vcpu: float = 0.25
    task_memory_gb: float = 0.5
    task_records_per_s: float = 1_000.0
    min_tasks: int = 2
    heartbeat_interval_s: float = 2.5
    scan_interval_s: float = 5.0
    checkpoint_interval_s: float = 10.0
    lease_item_bytes: float = 300.0

    def __post_init__(self) -> None:
        _finite("task_vcpu", self.task_vcpu)
        if self.task_vcpu not in FARGATE_VCPU:
            sizes = ", ".join(f"{size:g}" for size in FARGATE_VCPU)
            raise CostInputError(
                "task_vcpu", f"must be a Fargate size ({sizes}), got {self.task_vcpu:g}"
            )
        _between("task_memory_gb", self.task_memory_gb, 0.5, 120.0)
        _positive("task_records_per_s", self.task_records_per_s)
        _whole("min_tasks", self.min_tasks, 1)
        _positive("heartbeat_interval_s", self.heartbeat_interval_s)
        _positive("scan_interval_s", self.scan_interval_s)
        _positive("checkpoint_interval_s", self.checkpoint_interval_s)
        _positive("lease_item_bytes", self.lease_item_bytes)


@dataclass(frozen=True)
class LambdaSizing:
    """The DynamoDB Streams + Lambda design: the event source mapping's `batch_size`, every
    function's memory, one invocation's billed duration (`lambda_batch_ms` + `lambda_record_ms`
    x records in it; the fan-out dispatcher's: `dispatcher_ms`), and the stream's shards if
    known (None: estimated from the table's partitions)."""

    batch_size: int = 100
    lambda_memory_mb: int = 512
    lambda_batch_ms: float = 100.0
    lambda_record_ms: float = 1.0
    dispatcher_ms: float = 50.0
    stream_shards: int | None = None

    def __post_init__(self) -> None:
        _whole("batch_size", self.batch_size, 1, 10_000)
        _whole("lambda_memory_mb", self.lambda_memory_mb, 128, 10_240)
        _positive("lambda_batch_ms", self.lambda_batch_ms)
        _at_least("lambda_record_ms", self.lambda_record_ms, 0.0)
        _positive("dispatcher_ms", self.dispatcher_ms)
        if self.stream_shards is not None:
            _whole("stream_shards", self.stream_shards, 1)


@dataclass(frozen=True)
class Scenario:
    """Everything a comparison needs besides prices.

    - failure_rate: share of records that end in a dead-letter queue (default 0.0001).
    """

    workload: Workload
    records: RecordShape = field(default_factory=RecordShape)
    service: ServiceSizing = field(default_factory=ServiceSizing)
    lambdas: LambdaSizing = field(default_factory=LambdaSizing)
    failure_rate: float = 0.0001

    def __post_init__(self) -> None:
        _between("failure_rate", self.failure_rate, 0.0, 1.0)

    def at_writes_per_day(self, writes_per_day: float) -> Scenario:
        """The same scenario at another write rate (used to scan for crossovers)."""
        return replace(self, workload=replace(self.workload, writes_per_day=writes_per_day))
