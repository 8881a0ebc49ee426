"""One assembly: what a consumer process builds from `Settings`, owned by one exit stack.

`async with open_runtime(settings) as runtime` opens the pipelines' AWS clients; the routes
(sinks, filters, retry policies), the dead-letter queue, a stream source (reader, shard lister,
decoder), the lease table and the coordinator are built only when asked, into the same stack.
Every sink built is closed when the block ends (a sink shared by every shard, like search,
exactly once). The worker, stream replay, `compare latency` (through the worker), the Lambda
handler, `dlq replay`, backfill, archive replay and verify's repair are all assembled here;
`only_pipelines` narrows the settings to the sinks a backfill or a verify writes through.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from checkpoints import Checkpoint, LeaseHandle, LeaseSettings, LeaseTable
from checkpoints.coordinator import Coordinator
from checkpoints.discovery import ShardLister
from consumer.aws import AwsEndpoints
from consumer.aws.endpoints import Service
from consumer.aws.shards import KinesisShardLister, StreamsShardLister
from consumer.pipeline.audit import AuditSettings, AuditSink
from consumer.pipeline.decoders import Decoder, decode_kinesis, decode_streams
from consumer.pipeline.dlq import (
    DeadLetterQueue,
    DlqRejectedError,
    ParkedRecord,
    SqsDeadLetterQueue,
)
from consumer.pipeline.filters import RecordFilter
from consumer.pipeline.null import NullSink
from consumer.pipeline.processor import Checkpointer, RetryPolicy, Route, ShardPipeline
from consumer.pipeline.replication import ReplicationSink, load_transform, replica_client
from consumer.pipeline.search import LocalIndexSettings, OpenSearchSettings, search_sink
from consumer.pipeline.sink import Sink
from consumer.pipeline.transform_hook import TransformHook
from consumer.service.precision_check import warn_unless_microsecond
from consumer.service.preflight import check_dynamodb_stream, check_stream
from consumer.service.search_secret import search_password
from consumer.settings import PIPELINE_NAMES, Settings
from consumer.sources.initial_response import install_subscription_stream
from consumer.sources.lean import install_lean_get_records
from consumer.sources.model import ShardReader
from consumer.sources.select import open_kinesis_reader
from consumer.sources.streams import DynamoDBStreamsReader, install_lean_streams
from consumer.telemetry.metrics import MetricsRegistry

log = structlog.get_logger(__name__)

RoutesFactory = Callable[[str], list[Route]]

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
        clients: PipelineClients,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients
        # Counters every pipeline built here adds into (None: each pipeline keeps its own).
        self.metrics = metrics
        self._stack = stack
        self._endpoints = settings.aws.endpoints()
        self._session = self._endpoints.aio_session()  # parses the service models once
        self._build_routes: RoutesFactory | None = None  # loads the transform hook: on demand
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
            self._build_routes = _routes_factory(self.settings, self.clients)
        routes = self._build_routes(shard_id)
        self._sinks.update(route.sink for route in routes)
        return routes

    def dead_letter_queue(self) -> DeadLetterQueue:
        if self._dlq is None:
            self._dlq = _build_dlq(self.settings, self.clients)
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


class NoDeadLetterQueue:
    """Used when no pipeline parks records (all use on_failure=stop); parking is a bug then."""

    async def park(self, records: Sequence[ParkedRecord]) -> None:
        raise DlqRejectedError("no dead-letter queue is configured (dlq.queue_url)")


@dataclass
class PipelineClients:
    """The AWS clients the pipelines share (opened once per runtime)."""

    s3: Any | None = None
    sqs: Any | None = None
    replica_dynamodb: Any | None = None
    # The OpenSearch password: the settings' own, or read from search.password_secret_arn.
    search_password: str | None = None


def only_pipelines(settings: Settings, names: Collection[str]) -> Settings:
    """The settings with only the pipelines in `names` enabled (a backfill's, a verify's)."""
    section = settings.pipelines
    updates = {
        name: getattr(section, name).model_copy(update={"enabled": name in names})
        for name in PIPELINE_NAMES
    }
    return settings.model_copy(update={"pipelines": section.model_copy(update=updates)})


async def _open_clients(settings: Settings, stack: AsyncExitStack) -> PipelineClients:
    endpoints = settings.aws.endpoints()
    clients = PipelineClients(search_password=await search_password(settings))
    pipelines = settings.pipelines
    if pipelines.audit.enabled or settings.dlq.overflow_bucket:
        clients.s3 = await stack.enter_async_context(endpoints.aio_client("s3"))
    if settings.dlq.queue_url:
        clients.sqs = await stack.enter_async_context(endpoints.aio_client("sqs"))
    if pipelines.replication.enabled:
        replica = pipelines.replication
        replica_endpoints = AwsEndpoints(
            region=replica.region or endpoints.region,
            endpoint_urls={"dynamodb": replica.endpoint}
            if replica.endpoint
            else dict(endpoints.endpoint_urls),
            access_key_id=endpoints.access_key_id,
            secret_access_key=endpoints.secret_access_key,
        )
        clients.replica_dynamodb = await stack.enter_async_context(
            replica_client(replica_endpoints, transform=bool(replica.transform))
        )
    return clients


def _build_dlq(settings: Settings, clients: PipelineClients) -> DeadLetterQueue:
    """The settings' DLQ; says once, at start, what happens to records it cannot take."""
    if not settings.dlq.queue_url:
        # Settings allow this only when every sink pipeline stops on failure; decode failures
        # can still happen, and with nowhere to park them the shard stops at that record.
        log.warning(
            "dlq.none",
            message="no dead-letter queue (dlq.queue_url): a record that cannot be decoded "
            "or applied stops its shard at that record",
        )
        return NoDeadLetterQueue()
    if not settings.dlq.overflow_bucket:
        log.info(
            "dlq.no_overflow_bucket",
            message="no dlq.overflow_bucket: a record too large for an SQS message stops "
            "its shard instead of being parked",
        )
    return SqsDeadLetterQueue(
        clients.sqs,
        settings.dlq.queue_url,
        s3_client=clients.s3,
        overflow_bucket=settings.dlq.overflow_bucket,
        overflow_prefix=settings.dlq.overflow_prefix,
    )


def _routes_factory(settings: Settings, clients: PipelineClients) -> RoutesFactory:
    """Resolves everything that can be checked up front (filters, the transform hook), then
    returns a function building one shard's routes. Audit buffers per shard: one per shard;
    search keeps no per-shard state: one per runtime, sharing one connection."""
    pipelines = settings.pipelines
    transform: TransformHook | None = None
    if pipelines.replication.enabled and pipelines.replication.transform:
        # One hook for every shard: its calls run one at a time, each bounded in time.
        transform = TransformHook(
            load_transform(pipelines.replication.transform),
            pipelines.replication.transform_timeout_s,
        )
    filters = {name: RecordFilter(getattr(pipelines, name).filters) for name in PIPELINE_NAMES}
    policies = {name: RetryPolicy.of(getattr(pipelines, name).retry) for name in PIPELINE_NAMES}
    builders: dict[str, Callable[[str], Sink]] = {}
    if pipelines.replication.enabled:
        builders["replication"] = lambda shard_id: ReplicationSink(
            clients.replica_dynamodb, pipelines.replication, transform=transform
        )
    audit = pipelines.audit
    if audit.enabled:
        audit_settings = AuditSettings.of(audit)
        builders["audit"] = lambda shard_id: AuditSink(audit_settings, store=clients.s3)
    search = pipelines.search
    if search.enabled:
        opensearch = (
            OpenSearchSettings.of(
                search,
                # SigV4 signs for the region the endpoint lives in (aws.region if unknown).
                region=search.endpoint_region or settings.aws.region,
                password=clients.search_password or search.password,
            )
            if search.endpoint
            else None
        )
        shared = search_sink(
            opensearch, LocalIndexSettings(index=search.index, directory=search.local_path)
        )
        builders["search"] = lambda shard_id: shared
    if pipelines.null.enabled:
        builders["null"] = lambda shard_id: NullSink()

    def build(shard_id: str) -> list[Route]:
        return [
            Route(builder(shard_id), filters[name], policies[name])
            for name, builder in builders.items()
        ]

    return build


@asynccontextmanager
async def open_runtime(
    settings: Settings, metrics: MetricsRegistry | None = None
) -> AsyncIterator[Runtime]:
    """The runtime of `settings`; everything it opened is closed when the block ends."""
    async with AsyncExitStack() as stack:
        clients = await _open_clients(settings, stack)
        yield Runtime(settings, stack, clients, metrics)
