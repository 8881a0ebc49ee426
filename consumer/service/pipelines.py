"""Building the pipelines (routes: sink + filter + retry policy) and the DLQ from settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import structlog

from consumer.aws import AwsEndpoints
from consumer.pipeline.audit import AuditSettings, AuditSink
from consumer.pipeline.dlq import (
    DeadLetterQueue,
    DlqRejectedError,
    ParkedRecord,
    SqsDeadLetterQueue,
)
from consumer.pipeline.filters import RecordFilter
from consumer.pipeline.null import NullSink
from consumer.pipeline.processor import RetryPolicy, Route
from consumer.pipeline.replication import (
    ReplicationSink,
    load_transform,
    replica_client,
)
from consumer.pipeline.search import LocalIndexSettings, OpenSearchSettings, search_sink
from consumer.pipeline.sink import Sink
from consumer.pipeline.transform_hook import TransformHook
from consumer.service.search_secret import search_password
from consumer.settings import PIPELINE_NAMES, Settings

log = structlog.get_logger(__name__)

RoutesFactory = Callable[[str], list[Route]]


class NoDeadLetterQueue:
    """Used when no pipeline parks records (all use on_failure=stop); parking is a bug then."""

    async def park(self, records: Sequence[ParkedRecord]) -> None:
        raise DlqRejectedError("no dead-letter queue is configured (dlq.queue_url)")


@dataclass
class PipelineClients:
    """The AWS clients the pipelines share (opened once per worker)."""

    s3: Any | None = None
    sqs: Any | None = None
    replica_dynamodb: Any | None = None
    # The OpenSearch password: the settings' own, or read from search.password_secret_arn.
    search_password: str | None = None
    # Closes what every shard shares (the search sink) when the clients' owner ends; without
    # one, whoever built the routes closes the shared sinks.
    owner: AsyncExitStack | None = None


async def open_pipeline_clients(settings: Settings, stack: AsyncExitStack) -> PipelineClients:
    endpoints = settings.aws.endpoints()
    clients = PipelineClients(search_password=await search_password(settings), owner=stack)
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


def build_dlq(settings: Settings, clients: PipelineClients) -> DeadLetterQueue:
    """The worker's DLQ; says once, at start, what happens to records it cannot take."""
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


def routes_factory(settings: Settings, clients: PipelineClients) -> RoutesFactory:
    """Resolves everything that can be checked up front (filters, the transform hook), then
    returns a function building one shard's routes (buffering sinks keep per-shard state)."""
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
    sink_builders: dict[str, Callable[[str], Sink]] = {}
    if pipelines.replication.enabled:
        sink_builders["replication"] = lambda shard_id: ReplicationSink(
            clients.replica_dynamodb, pipelines.replication, transform=transform
        )
    for name, builder in extra_sink_builders(settings, clients).items():
        sink_builders[name] = builder
    if pipelines.null.enabled:
        sink_builders["null"] = lambda shard_id: NullSink()

    def build(shard_id: str) -> list[Route]:
        return [
            Route(builder(shard_id), filters[name], policies[name])
            for name, builder in sink_builders.items()
        ]

    return build


def extra_sink_builders(
    settings: Settings, clients: PipelineClients
) -> dict[str, Callable[[str], Sink]]:
    """The audit and search sinks (audit: one per shard, it buffers per shard; search: one per
    process, it keeps no per-shard state and shares one connection)."""
    builders: dict[str, Callable[[str], Sink]] = {}
    audit = settings.pipelines.audit
    if audit.enabled:
        audit_settings = AuditSettings.of(audit)
        builders["audit"] = lambda shard_id: AuditSink(audit_settings, store=clients.s3)
    search = settings.pipelines.search
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
        if clients.owner is not None:
            clients.owner.push_async_callback(shared.aclose)
        builders["search"] = lambda shard_id: shared
    return builders
