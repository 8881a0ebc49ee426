"""The worker: leases + readers + decoding + pipelines, one task per owned shard.

`Worker.run(stop)` wires everything from Settings, runs until `stop` is set (SIGTERM/SIGINT)
or, in burst mode, until no shard has delivered a record for `until_idle_s`; then it hands every
lease off after a final checkpoint (the coordinator's graceful close) within the stop timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from checkpoints import Checkpoint, LeaseHandle, LeaseSettings, LeaseTable
from checkpoints.coordinator import Coordinator
from checkpoints.discovery import ShardLister
from consumer.aws.shards import KinesisShardLister, StreamsShardLister
from consumer.pipeline.added_latency import AddedLatency
from consumer.pipeline.decoders import decode_kinesis, decode_streams
from consumer.pipeline.processor import PipelineStats, Route, ShardPipeline
from consumer.service.pipelines import (
    build_dlq,
    open_pipeline_clients,
    routes_factory,
)
from consumer.service.precision_check import warn_unless_microsecond
from consumer.service.preflight import (
    check_destinations,
    check_dynamodb_stream,
    check_stream,
    claim_lease_table,
)
from consumer.service.shard_task import ShardActivity, read_ahead_limits, run_shard
from consumer.settings import Settings
from consumer.sources.budget import ByteBudget
from consumer.sources.initial_response import install_subscription_stream
from consumer.sources.lean import install_lean_get_records
from consumer.sources.model import ShardReader
from consumer.sources.polling import PollingOptions
from consumer.sources.select import ReaderOptions, ReadMode, open_kinesis_reader
from consumer.sources.streams import DynamoDBStreamsReader, install_lean_streams

log = structlog.get_logger(__name__)

# Leave the last part of ECS's stop timeout for closing clients and flushing telemetry.
SHUTDOWN_SHARE = 0.8

# Sees (and may wrap) the routes built for a shard, e.g. to observe sinks: (shard id, routes).
RoutesHook = Callable[[str, list[Route]], list[Route]]


def initial_checkpoint(value: str) -> Checkpoint:
    if value == "TRIM_HORIZON":
        return Checkpoint.trim_horizon()
    if value == "LATEST":
        return Checkpoint.latest()
    when = datetime.fromisoformat(value.removeprefix("AT_TIMESTAMP="))
    if when.tzinfo is None:
        raise ValueError(f"initial position {value}: give a time zone (e.g. Z or +00:00)")
    return Checkpoint.at_timestamp(when)


def lease_settings(settings: Settings, stream_arn: str) -> LeaseSettings:
    leases = settings.leases
    return LeaseSettings(
        application_name=settings.application,
        stream_arn=stream_arn,
        table_name=settings.lease_table,
        initial_position=initial_checkpoint(settings.stream.initial_position),
        heartbeat_interval_s=leases.heartbeat_interval_s,
        failover_s=leases.failover_s,
        fencing_margin_s=min(3.0, leases.failover_s / 3),
        take_interval_s=leases.take_interval_s,
        max_steals_per_interval=leases.max_steals_per_interval,
        shutdown_timeout_s=settings.stop_timeout_s * SHUTDOWN_SHARE,
        worker_id=leases.worker_id,
    )


@dataclass
class WorkerState:
    """What health checks and metrics read."""

    started_at: float = 0.0
    ready: bool = False
    stopping: bool = False
    coordinator: Coordinator | None = None
    activity: ShardActivity | None = None
    pipelines: dict[str, ShardPipeline] | None = None
    read_ahead: ByteBudget | None = None
    retired_latency: AddedLatency = field(default_factory=AddedLatency)
    # The counts of shards this worker let go: totals since start never go backwards.
    retired_stats: PipelineStats = field(default_factory=PipelineStats)

    def missing_destinations(self) -> dict[str, str]:
        """Sink -> error code, for each destination a shard here finds missing now."""
        missing: dict[str, str] = {}
        for pipeline in (self.pipelines or {}).values():
            if pipeline.missing_destinations is not None:
                missing.update(pipeline.missing_destinations.missing)
        return missing

    def added_latency(self) -> AddedLatency:
        """The consumer's added latency over every shard this worker has processed."""
        total = AddedLatency()
        total.merge(self.retired_latency)
        for pipeline in (self.pipelines or {}).values():
            total.merge(pipeline.added_latency)
        return total


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
        self.state = WorkerState(activity=ShardActivity(), pipelines={})

    async def _stream_arn(self, kinesis: Any) -> str:
        stream = self.settings.stream
        if stream.arn:
            return stream.arn
        summary = await kinesis.describe_stream_summary(StreamName=stream.name)
        return str(summary["StreamDescriptionSummary"]["StreamARN"])

    async def _kinesis_reader(self, stack: AsyncExitStack) -> tuple[ShardReader, ShardLister, str]:
        endpoints = self.settings.aws.endpoints()
        client = await stack.enter_async_context(endpoints.aio_client("kinesis"))
        install_lean_get_records(client)
        install_subscription_stream(client)
        await check_stream(self.settings, client)
        stream_arn = await self._stream_arn(client)
        stream = self.settings.stream
        async with endpoints.aio_client("dynamodb") as dynamodb:  # warns on MILLISECOND ties
            await warn_unless_microsecond(dynamodb, stream.source_table, stream_arn)
        options = ReaderOptions(
            mode=ReadMode(self.settings.stream.mode),
            consumer_name=self.settings.consumer_name,
            fallback_to_polling=self.settings.stream.fallback_to_polling,
            polling=PollingOptions(
                interval_s=self.settings.stream.polling_interval_s,
                # an eighth of a shard's read-ahead: a batch in processing, several read ahead,
                # and a worker catching up on 100 shards holds ~100 MiB in first batches
                batch_bytes=self.settings.stream.read_ahead_bytes_per_shard // 8,
            ),
        )
        reader = await open_kinesis_reader(client, stream_arn, options, stream.name)
        lister_client = await stack.enter_async_context(endpoints.aio_client("kinesis"))
        return reader, KinesisShardLister(lister_client, stream_arn=stream_arn), stream_arn

    async def _streams_reader(self, stack: AsyncExitStack) -> tuple[ShardReader, ShardLister, str]:
        endpoints = self.settings.aws.endpoints()
        client = await stack.enter_async_context(endpoints.aio_client("dynamodbstreams"))
        install_lean_streams(client)
        stream_arn = self.settings.stream.dynamodb_stream_arn
        assert stream_arn is not None
        await check_dynamodb_stream(stream_arn, client)
        reader = DynamoDBStreamsReader(client, stream_arn)
        return reader, StreamsShardLister(client, stream_arn), stream_arn

    def _idle(self, now: float) -> bool:
        """Burst mode: nothing left to do for `until_idle_s`.

        Every held shard must have been read up to the tip at least once (a shard that is
        still starting or behind is not idle), and no record may have arrived for
        `until_idle_s`. A worker that never held a lease also waits out one failover time
        and take interval, so slow starts and leases of dead workers are not mistaken for
        an empty stream.
        """
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
        last = max(
            [
                self.state.started_at,
                *activity.started_at.values(),
                *activity.last_record_at.values(),
            ]
        )
        return now - last >= self.until_idle_s

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
        self.state.started_at = time.monotonic()
        async with AsyncExitStack() as stack:
            if settings.stream.mode == "streams":
                reader, lister, stream_arn = await self._streams_reader(stack)
                decoder = decode_streams
            else:
                reader, lister, stream_arn = await self._kinesis_reader(stack)
                decoder = decode_kinesis
            clients = await open_pipeline_clients(settings, stack)
            dlq = build_dlq(settings, clients)
            build_routes = routes_factory(settings, clients)
            hook = self.routes_hook
            # Before any lease: a destination we cannot write would hold shards hostage.
            await check_destinations(settings, clients, build_routes("preflight"))

            def make_routes(shard_id: str) -> list[Route]:
                routes = build_routes(shard_id)
                return routes if hook is None else hook(shard_id, routes)

            activity = self.state.activity
            assert activity is not None and self.state.pipelines is not None
            pipelines = self.state.pipelines

            def make_pipeline(handle: LeaseHandle) -> ShardPipeline:
                pipeline = ShardPipeline(
                    stream_arn,
                    handle.shard_id,
                    make_routes(handle.shard_id),
                    dlq,
                    handle,
                    decoder=decoder,
                    checkpoint_interval_s=settings.checkpoint_interval_s,
                    missing_destination_bound_s=settings.leases.destination_missing_release_s,
                )
                pipelines[handle.shard_id] = pipeline
                return pipeline

            read_ahead = read_ahead_limits(settings.stream)
            self.state.read_ahead = read_ahead.worker

            async def relinquish(handle: LeaseHandle) -> None:
                coordinator = self.state.coordinator
                assert coordinator is not None  # it runs the shards
                await coordinator.relinquish(
                    handle, settings.leases.destination_missing_cool_down_s
                )

            async def process(handle: LeaseHandle) -> None:
                try:
                    await run_shard(
                        handle,
                        reader,
                        make_pipeline,
                        activity,
                        settings.stream.read_ahead_batches,
                        limits=read_ahead,
                        relinquish=relinquish,
                    )
                finally:
                    retired = pipelines.pop(handle.shard_id, None)
                    if retired is not None:  # kept: the worker's figures never go backwards
                        self.state.retired_latency.merge(retired.added_latency)
                        self.state.retired_stats.merge(retired.stats)

            leases = lease_settings(settings, stream_arn)
            table = await stack.enter_async_context(
                LeaseTable.open(settings.aws.endpoints(), leases.lease_table, leases.retry)
            )
            await table.create_if_missing()
            async with settings.aws.endpoints().aio_client("dynamodb") as dynamodb:
                await claim_lease_table(dynamodb, leases.lease_table, stream_arn)
            coordinator = Coordinator(leases, table, lister, process)
            self.state.coordinator = coordinator
            log.info(
                "worker.start",
                application=settings.application,
                stream=stream_arn,
                mode=settings.stream.mode,
                pipelines=settings.enabled_pipelines(),
                lease_table=leases.lease_table,
            )
            async with coordinator:
                self.state.ready = True
                self.state.started_at = time.monotonic()  # burst mode's idle clock starts here
                await self._wait(stop)
                self.state.stopping = True
                log.info("worker.stopping", held=sorted(coordinator.held_shards()))
            log.info("worker.stopped", records=activity.records)
