"""One runtime: what a consumer process opens from `Settings`, owned by one exit stack.

`async with open_runtime(settings) as runtime` opens the pipelines' AWS clients; the routes and
the dead-letter queue (`sinks.py`), a stream source (reader, shard lister, decoder), the lease
table and the coordinator are built only when asked, into the same stack. Every sink built is
closed when the block ends (a sink shared by every shard, like search, exactly once). The
worker, stream replay, `compare latency` (through the worker), the Lambda handler, `dlq
replay`, backfill, archive replay and verify's repair all run on it.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from checkpoints import Checkpoint, LeaseHandle, LeaseSettings, LeaseTable
from checkpoints.coordinator import Coordinator
from checkpoints.discovery import ShardLister
from consumer.aws.endpoints import Service
from consumer.aws.shards import KinesisShardLister, StreamsShardLister
from consumer.pipeline.decoders import Decoder, decode_kinesis, decode_streams
from consumer.pipeline.dlq import DeadLetterQueue
from consumer.pipeline.processor import Checkpointer, Route, ShardPipeline
from consumer.pipeline.sink import Sink
from consumer.service import sinks
from consumer.service.precision_check import warn_unless_microsecond
from consumer.service.preflight import check_dynamodb_stream, check_stream
from consumer.settings import Settings
from consumer.sources.initial_response import install_subscription_stream
from consumer.sources.lean import install_lean_get_records
from consumer.sources.model import ShardReader
from consumer.sources.select import open_kinesis_reader
from consumer.sources.streams import DynamoDBStreamsReader, install_lean_streams
from consumer.telemetry.metrics import MetricsRegistry

# Leave the last part of ECS's stop timeout for closing clients and flushing telemetry.
SHUTDOWN_SHARE = 0.8


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
    return LeaseSettings(
        **dict(settings.leases),
        application_name=settings.application,
        stream_arn=stream_arn,
        initial_position=initial_checkpoint(settings.stream.initial_position),
        shutdown_timeout_s=settings.stop_timeout_s * SHUTDOWN_SHARE,
    )


@dataclass(frozen=True)
class StreamSource:
    """Where a worker reads: the reader, the lister of the stream's shards, its ARN, and the
    decoder of its records."""

    reader: ShardReader
    lister: ShardLister
    arn: str
    decoder: Decoder


class Runtime:
    """The parts of one consumer process. Build it with `open_runtime` (unit tests give it
    in-memory clients)."""

    def __init__(
        self,
        settings: Settings,
        stack: AsyncExitStack,
        clients: sinks.PipelineClients,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients
        # Counters every pipeline built here adds into (None: each pipeline keeps its own).
        self.metrics = metrics
        self._stack = stack
        self._endpoints = settings.aws.endpoints()
        self._session = self._endpoints.aio_session()  # parses the service models once
        self._build_routes: sinks.RoutesFactory | None = None  # loads the transform hook: on demand
        self._dlq: DeadLetterQueue | None = None
        # Every sink built, closed at the end; a shard's sinks that are gone need no closing.
        self._sinks: weakref.WeakSet[Sink] = weakref.WeakSet()
        stack.push_async_callback(self._close_sinks)

    async def client(self, service: Service) -> Any:
        """A new aiobotocore client, closed with the runtime."""
        return await self._stack.enter_async_context(
            self._endpoints.aio_client(service, self._session)
        )

    def routes(self, shard_id: str) -> list[Route]:
        """One shard's routes (buffering sinks keep per-shard state; search is shared)."""
        if self._build_routes is None:
            self._build_routes = sinks.routes_factory(self.settings, self.clients)
        routes = self._build_routes(shard_id)
        self._sinks.update(route.sink for route in routes)
        return routes

    def dead_letter_queue(self) -> DeadLetterQueue:
        if self._dlq is None:
            self._dlq = sinks.build_dlq(self.settings, self.clients)
        return self._dlq

    def pipeline(
        self,
        stream: str,
        shard_id: str,
        checkpointer: Checkpointer,
        *,
        routes: list[Route],
        decoder: Decoder,
        dlq: DeadLetterQueue | None = None,
        missing_destination_bound_s: float | None = None,
    ) -> ShardPipeline:
        """A shard's pipeline over `routes` (from `routes`), parking in `dlq` (default: the
        settings' queue), checkpointing every `checkpoint_interval_s`."""
        metrics = self.metrics
        return ShardPipeline(
            stream,
            shard_id,
            routes,
            dlq if dlq is not None else self.dead_letter_queue(),
            checkpointer,
            decoder=decoder,
            checkpoint_interval_s=self.settings.checkpoint_interval_s,
            missing_destination_bound_s=missing_destination_bound_s,
            stats=None if metrics is None else metrics.pipelines,
            added_latency=None if metrics is None else metrics.added_latency,
        )

    async def stream_source(self) -> StreamSource:
        """The reader the settings ask for (EFO or polling on Kinesis, or DynamoDB Streams),
        after checking that the stream exists."""
        if self.settings.stream.mode == "streams":
            return await self._streams_source()
        return await self._kinesis_source()

    async def _kinesis_source(self) -> StreamSource:
        settings = self.settings
        stream = settings.stream
        client = await self.client("kinesis")
        install_lean_get_records(client)
        install_subscription_stream(client)
        await check_stream(settings, client)
        arn = stream.arn
        if not arn:
            summary = await client.describe_stream_summary(StreamName=stream.name)
            arn = str(summary["StreamDescriptionSummary"]["StreamARN"])
        async with self._endpoints.aio_client("dynamodb", self._session) as dynamodb:
            await warn_unless_microsecond(dynamodb, stream.source_table, arn)  # MILLISECOND ties
        reader = await open_kinesis_reader(client, arn, stream, settings.consumer_name)
        lister = KinesisShardLister(await self.client("kinesis"), stream_arn=arn)
        return StreamSource(reader, lister, arn, decode_kinesis)

    async def _streams_source(self) -> StreamSource:
        client = await self.client("dynamodbstreams")
        install_lean_streams(client)
        arn = self.settings.stream.dynamodb_stream_arn
        assert arn is not None
        await check_dynamodb_stream(arn, client)
        reader = DynamoDBStreamsReader(client, arn)
        return StreamSource(reader, StreamsShardLister(client, arn), arn, decode_streams)

    async def coordinator(
        self,
        leases: LeaseSettings,
        lister: ShardLister,
        process: Callable[[LeaseHandle], Awaitable[None]],
        *,
        worker_id: str | None = None,
    ) -> Coordinator:
        """The lease coordinator over `leases.lease_table` (created here if missing)."""
        table = await self._stack.enter_async_context(
            LeaseTable.open(self._endpoints, leases.lease_table, leases.retry)
        )
        await table.create_if_missing()
        return Coordinator(leases, table, lister, process, worker_id=worker_id)

    async def _close_sinks(self) -> None:
        for sink in list(self._sinks):
            await sink.aclose()


@asynccontextmanager
async def open_runtime(
    settings: Settings, metrics: MetricsRegistry | None = None
) -> AsyncIterator[Runtime]:
    """The runtime of `settings`; everything it opened is closed when the block ends."""
    async with AsyncExitStack() as stack:
        clients = await sinks.open_clients(settings, stack)
        yield Runtime(settings, stack, clients, metrics)
