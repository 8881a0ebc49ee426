"""The worker: leases + readers + decoding + pipelines, one task per owned shard. `run(stop)`
runs until `stop` is set (SIGTERM/SIGINT) or, in burst mode, no shard has delivered a record for
`until_idle_s`; then it hands every lease off after a final checkpoint, within the stop timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from checkpoints import LeaseHandle
from checkpoints.coordinator import Coordinator
from consumer.pipeline.processor import Route, ShardPipeline
from consumer.service.assembly import lease_settings, open_runtime
from consumer.service.preflight import check_destinations, claim_lease_table
from consumer.service.shard_task import ShardActivity, read_ahead_limits, run_shard
from consumer.service.startup_heap import freeze_startup_heap
from consumer.settings import Settings
from consumer.telemetry.metrics import MetricsRegistry

log = structlog.get_logger(__name__)

# Sees (and may wrap) the routes built for a shard, e.g. to observe sinks: (shard id, routes).
RoutesHook = Callable[[str, list[Route]], list[Route]]


@dataclass
class WorkerState:
    """What health checks and metrics read."""

    started_at: float = 0.0
    ready: bool = False
    stopping: bool = False
    coordinator: Coordinator | None = None
    activity: ShardActivity = field(default_factory=ShardActivity)
    # The pipelines of the shards held now (their counters add into `metrics`).
    pipelines: dict[str, ShardPipeline] = field(default_factory=dict)
    metrics: MetricsRegistry = field(default_factory=MetricsRegistry)

    def __post_init__(self) -> None:
        self.metrics.shards = self.activity

    def missing_destinations(self) -> dict[str, str]:
        """Sink -> error code, for each destination a shard here finds missing now."""
        missing: dict[str, str] = {}
        for pipeline in self.pipelines.values():
            if pipeline.missing_destinations is not None:
                missing.update(pipeline.missing_destinations.missing)
        return missing


class Worker:
    """One consumer worker (one per ECS task). Constructing it does no I/O."""

    def __init__(
        self,
        settings: Settings,
        until_idle_s: float | None = None,
        routes_hook: RoutesHook | None = None,
    ) -> None:
        if until_idle_s is not None and until_idle_s <= 0:
            raise ValueError(f"--until-idle must be > 0 seconds, got {until_idle_s}")
        self.settings = settings
        self.until_idle_s = until_idle_s
        self.routes_hook = routes_hook
        self.state = WorkerState()

    def _idle(self, now: float) -> bool:
        """Burst mode: every held shard was read up to the tip at least once, and no record
        arrived for `until_idle_s`. A worker that never held a lease also waits out one failover
        time and take interval, so slow starts and dead workers' leases are not taken for an
        empty stream."""
        activity = self.state.activity
        coordinator = self.state.coordinator
        assert activity is not None and self.until_idle_s is not None
        held = coordinator.held_shards() if coordinator is not None else frozenset()
        for shard in held:
            if shard not in activity.last_batch_at or activity.millis_behind.get(shard, 0) > 0:
                return False
        if not activity.started_at:
            leases = self.settings.leases
            grace = leases.failover_s + leases.take_interval_s
            return now - self.state.started_at >= self.until_idle_s + grace
        since = (*activity.started_at.values(), *activity.last_record_at.values())
        return now - max(self.state.started_at, *since) >= self.until_idle_s

    async def _wait(self, stop: asyncio.Event) -> None:
        if self.until_idle_s is None:
            await stop.wait()
            return
        while not stop.is_set():
            if self._idle(time.monotonic()):
                log.info("worker.idle", idle_s=self.until_idle_s)
                return
            try:
                await asyncio.wait_for(stop.wait(), timeout=min(0.5, self.until_idle_s / 4))
            except TimeoutError:
                continue

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        state = self.state
        state.started_at = time.monotonic()
        async with open_runtime(settings, state.metrics) as runtime:
            source = await runtime.stream_source()
            runtime.dead_letter_queue()  # says once, at start, where failed records go
            # Before any lease: a destination we cannot write would hold shards hostage.
            await check_destinations(settings, runtime.clients, runtime.routes("preflight"))
            hook = self.routes_hook

            def make_pipeline(handle: LeaseHandle) -> ShardPipeline:
                routes = runtime.routes(handle.shard_id)
                pipeline = runtime.pipeline(
                    source.arn,
                    handle.shard_id,
                    handle,
                    routes=routes if hook is None else hook(handle.shard_id, routes),
                    decoder=source.decoder,
                    missing_destination_bound_s=settings.leases.destination_missing_release_s,
                )
                state.pipelines[handle.shard_id] = pipeline
                return pipeline

            read_ahead = read_ahead_limits(settings.stream)

            async def relinquish(handle: LeaseHandle) -> None:
                assert state.coordinator is not None  # it runs the shards
                await state.coordinator.relinquish(
                    handle, settings.leases.destination_missing_cool_down_s
                )

            async def process(handle: LeaseHandle) -> None:
                try:
                    await run_shard(
                        handle,
                        source.reader,
                        make_pipeline,
                        state.activity,
                        settings.stream.read_ahead_batches,
                        limits=read_ahead,
                        relinquish=relinquish,
                    )
                finally:  # its counts stay in the worker's metrics
                    state.pipelines.pop(handle.shard_id, None)

            leases = lease_settings(settings, source.arn)
            coordinator = await runtime.coordinator(leases, source.lister, process)
            dynamodb = await runtime.client("dynamodb")
            await claim_lease_table(dynamodb, leases.lease_table, source.arn)
            state.coordinator = state.metrics.leases = coordinator
            log.info(
                "worker.start",
                application=settings.application,
                stream=source.arn,
                mode=settings.stream.mode,
                pipelines=settings.enabled_pipelines(),
                lease_table=leases.lease_table,
            )
            # Before any lease: its full collection blocks the loop, 1.6 s under load (heartbeats).
            freeze_startup_heap()
            async with coordinator:
                state.ready = True
                state.started_at = time.monotonic()  # burst mode's idle clock starts here
                await self._wait(stop)
                state.stopping = True
                log.info("worker.stopping", held=sorted(coordinator.held_shards()))
            log.info("worker.stopped", records=state.activity.records)
