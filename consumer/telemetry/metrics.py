"""Metrics: CloudWatch embedded metric format (EMF) lines and a Prometheus endpoint.

Every `metrics_interval_s` the reporter takes a snapshot of the worker (records, lag per shard,
end-to-end age, sink time and failures, parked records, leases held, lease-table writes) and
writes one EMF JSON line on stdout, which the awslogs driver turns into CloudWatch metrics with
no agent and no PutMetricData calls. With `prometheus_port` set, /metrics serves the same
numbers as Prometheus text (counters are totals since start).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import orjson
from aiohttp import web

from consumer.pipeline.added_latency import AddedLatency
from consumer.pipeline.processor import PipelineStats
from consumer.records.ordering import AMBIGUOUS_TIES
from consumer.telemetry.health import HttpServer

if TYPE_CHECKING:
    from checkpoints.table import TableStats
    from consumer.settings import Settings


class ShardCounts(Protocol):
    """What the shard tasks count (consumer.service.shard_task.ShardActivity)."""

    records: int
    destinations_gone: int

    @property
    def millis_behind(self) -> Mapping[str, int]: ...


class LeaseCounts(Protocol):
    """What the lease coordinator counts (checkpoints.coordinator.Coordinator)."""

    def held_shards(self) -> frozenset[str]: ...

    @property
    def table_stats(self) -> TableStats: ...


@dataclass
class MetricsRegistry:
    """A worker's counters, as long-lived as the worker: every shard pipeline adds into
    `pipelines` and `added_latency`, so totals never fall when a shard ends or moves."""

    pipelines: PipelineStats = field(default_factory=PipelineStats)
    added_latency: AddedLatency = field(default_factory=AddedLatency)
    shards: ShardCounts | None = None
    leases: LeaseCounts | None = None


@dataclass
class Snapshot:
    records_total: int = 0
    changes_total: int = 0
    parked_total: int = 0
    retries_total: int = 0
    checkpoints_total: int = 0
    leases_held: int = 0
    lease_table_writes_total: int = 0
    millis_behind_latest: dict[str, int] = field(default_factory=dict)
    change_age_ms_max: int = 0
    sink_seconds_total: dict[str, float] = field(default_factory=dict)
    sink_failures_total: dict[str, int] = field(default_factory=dict)
    sink_waits_total: dict[str, int] = field(default_factory=dict)
    # Ties in ApproximateCreationDateTime the images could not order (consumer.records.ordering).
    ambiguous_ties_total: int = 0
    # Leases given up because a destination was missing past the bound (shard_task.py).
    destinations_gone_total: int = 0


def take_snapshot(registry: MetricsRegistry) -> Snapshot:
    stats = registry.pipelines
    snapshot = Snapshot(
        ambiguous_ties_total=AMBIGUOUS_TIES.total,
        changes_total=stats.changes,
        parked_total=stats.parked,
        retries_total=stats.retries,
        checkpoints_total=stats.checkpoints,
        change_age_ms_max=stats.last_change_age_ms,
        sink_seconds_total=dict(stats.sink_seconds),
        sink_failures_total=dict(stats.sink_failures),
        sink_waits_total=dict(stats.sink_waits),
    )
    if registry.shards is not None:
        snapshot.millis_behind_latest = dict(registry.shards.millis_behind)
        snapshot.records_total = registry.shards.records
        snapshot.destinations_gone_total = registry.shards.destinations_gone
    if registry.leases is not None:
        snapshot.leases_held = len(registry.leases.held_shards())
        snapshot.lease_table_writes_total = sum(registry.leases.table_stats.writes.values())
    return snapshot


def emf_line(
    namespace: str,
    application: str,
    now_ms: int,
    current: Snapshot,
    previous: Snapshot,
    interval_s: float,
) -> bytes:
    """One EMF document: rates over the interval, gauges as they are now."""
    rate = max(interval_s, 1e-9)
    count, ms = "Count", "Milliseconds"

    def change(counter: str) -> float:
        difference: float = getattr(current, counter) - getattr(previous, counter)
        return difference

    metrics: dict[str, tuple[float, str]] = {  # name: (value, unit)
        "RecordsPerSecond": (change("records_total") / rate, "Count/Second"),
        "ChangesPerSecond": (change("changes_total") / rate, "Count/Second"),
        "ParkedRecords": (change("parked_total"), count),
        "SinkRetries": (change("retries_total"), count),
        # Destination faults the shards waited on, all sinks (alarm: <app>-destination-refusing).
        "SinkWaits": (
            sum(current.sink_waits_total.values()) - sum(previous.sink_waits_total.values()),
            count,
        ),
        "LeasesHeld": (current.leases_held, count),
        "LeaseTableWrites": (change("lease_table_writes_total"), count),
        "MillisBehindLatest": (max(current.millis_behind_latest.values(), default=0), ms),
        "ChangeAgeMillis": (current.change_age_ms_max, ms),
        "AmbiguousTies": (change("ambiguous_ties_total"), count),
        # Leases given up for a missing destination (alarm: <app>-destination-missing).
        "DestinationsGone": (change("destinations_gone_total"), count),
    }
    per_sink: list[tuple[str, str, Mapping[str, float], Mapping[str, float]]] = [
        ("SinkSeconds", "Seconds", current.sink_seconds_total, previous.sink_seconds_total),
        ("SinkFailures", count, current.sink_failures_total, previous.sink_failures_total),
        ("SinkWaits", count, current.sink_waits_total, previous.sink_waits_total),
    ]
    for prefix, unit, now, before in per_sink:
        for name, value in now.items():
            metrics[f"{prefix}_{name}"] = (value - before.get(name, 0), unit)
    document = {
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [["Application"]],
                    "Metrics": [
                        {"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()
                    ],
                }
            ],
        },
        "Application": application,
        **{name: value for name, (value, _) in metrics.items()},
    }
    return orjson.dumps(document)


def prometheus_text(application: str, snapshot: Snapshot) -> str:
    label = f'application="{application}"'
    lines = [
        f"consumer_records_total{{{label}}} {snapshot.records_total}",
        f"consumer_changes_total{{{label}}} {snapshot.changes_total}",
        f"consumer_parked_records_total{{{label}}} {snapshot.parked_total}",
        f"consumer_sink_retries_total{{{label}}} {snapshot.retries_total}",
        f"consumer_checkpoints_total{{{label}}} {snapshot.checkpoints_total}",
        f"consumer_leases_held{{{label}}} {snapshot.leases_held}",
        f"consumer_lease_table_writes_total{{{label}}} {snapshot.lease_table_writes_total}",
        f"consumer_change_age_milliseconds{{{label}}} {snapshot.change_age_ms_max}",
        f"consumer_ambiguous_ties_total{{{label}}} {snapshot.ambiguous_ties_total}",
        f"consumer_destinations_gone_total{{{label}}} {snapshot.destinations_gone_total}",
    ]
    for shard, behind in sorted(snapshot.millis_behind_latest.items()):
        lines.append(f'consumer_millis_behind_latest{{{label},shard="{shard}"}} {behind}')
    for sink, seconds in sorted(snapshot.sink_seconds_total.items()):
        lines.append(f'consumer_sink_seconds_total{{{label},sink="{sink}"}} {seconds:.6f}')
    for sink, failures in sorted(snapshot.sink_failures_total.items()):
        lines.append(f'consumer_sink_failures_total{{{label},sink="{sink}"}} {failures}')
    for sink, waits in sorted(snapshot.sink_waits_total.items()):
        lines.append(f'consumer_sink_waits_total{{{label},sink="{sink}"}} {waits}')
    return "\n".join(lines) + "\n"


class MetricsReporter:
    """EMF on stdout and/or Prometheus on a port, per settings. No I/O until `start`."""

    def __init__(self, settings: Settings, registry: MetricsRegistry) -> None:
        self._telemetry = settings.telemetry
        self._application = settings.application
        self._registry = registry
        self._task: asyncio.Task[None] | None = None
        self._server: HttpServer | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        if self._telemetry.emf:
            self._task = asyncio.create_task(self._emf_loop(), name="metrics-emf")
        if self._telemetry.prometheus_port is not None:
            self._server = HttpServer(
                {"/metrics": self._metrics},
                self._telemetry.bind_address,
                self._telemetry.prometheus_port,
                "telemetry.prometheus_port",
            )
            await self._server.start()
            self.bound_port = self._server.bound_port

    async def _metrics(self, request: web.Request) -> web.Response:
        text = prometheus_text(self._application, take_snapshot(self._registry))
        return web.Response(text=text, content_type="text/plain")

    async def _emf_loop(self) -> None:
        interval = self._telemetry.metrics_interval_s
        previous = take_snapshot(self._registry)
        while True:
            await asyncio.sleep(interval)
            current = take_snapshot(self._registry)
            line = emf_line(
                self._telemetry.emf_namespace,
                self._application,
                int(time.time() * 1000),
                current,
                previous,
                interval,
            )
            sys.stdout.write(line.decode() + "\n")
            sys.stdout.flush()
            previous = current

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._server is not None:
            await self._server.aclose()
