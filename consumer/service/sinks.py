"""What the pipelines write through, built from `Settings`: the AWS clients they share, each
shard's routes (sinks, filters, retry policies) and the dead-letter queue."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Any

import structlog

from consumer.pipeline.audit.settings import AuditSettings
from consumer.pipeline.audit.sink import AuditSink
from consumer.pipeline.dlq import (
    DeadLetterQueue,
    DlqRejectedError,
    ParkedRecord,
    SqsDeadLetterQueue,
)
from consumer.pipeline.filters import RecordFilter
from consumer.pipeline.null import NullSink
from consumer.pipeline.processor import RetryPolicy, Route
from consumer.pipeline.replication import ReplicationSink, load_transform, replica_client
from consumer.pipeline.search import search_sink
from consumer.pipeline.search.settings import LocalIndexSettings, OpenSearchSettings
from consumer.pipeline.sink import Sink
from consumer.pipeline.transform_hook import TransformHook
from consumer.service.search_secret import search_password
from consumer.settings import PIPELINE_NAMES, Settings

log = structlog.get_logger(__name__)

RoutesFactory = Callable[[str], list[Route]]


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


async def open_clients(settings: Settings, stack: AsyncExitStack) -> PipelineClients:
    endpoints = settings.aws.endpoints()
    clients = PipelineClients(search_password=await search_password(settings))
    pipelines = settings.pipelines
    if pipelines.audit.enabled or settings.dlq.overflow_bucket:
        clients.s3 = await stack.enter_async_context(endpoints.aio_client("s3"))
    if settings.dlq.queue_url:
        clients.sqs = await stack.enter_async_context(endpoints.aio_client("sqs"))
    if pipelines.replication.enabled:
        replica = pipelines.replication
        replica_endpoints = replace(
            endpoints,
            region=replica.region or endpoints.region,
            endpoint_urls={"dynamodb": replica.endpoint}
            if replica.endpoint
            else dict(endpoints.endpoint_urls),
        )
        clients.replica_dynamodb = await stack.enter_async_context(
            replica_client(replica_endpoints, transform=bool(replica.transform))
        )
    return clients


class NoDeadLetterQueue:
    """Used when no pipeline parks records (all use on_failure=stop); parking is a bug then."""

    async def park(self, records: Sequence[ParkedRecord]) -> None:
        raise DlqRejectedError("no dead-letter queue is configured (dlq.queue_url)")


def sqs_dead_letter_queue(settings: Settings, sqs: Any, s3: Any | None) -> SqsDeadLetterQueue:
    dlq = settings.dlq
    if not dlq.queue_url:
        raise ValueError("no dead-letter queue is configured (dlq.queue_url)")
    return SqsDeadLetterQueue(
        sqs,
        dlq.queue_url,
        s3_client=s3,
        overflow_bucket=dlq.overflow_bucket,
        overflow_prefix=dlq.overflow_prefix,
    )


def build_dlq(settings: Settings, clients: PipelineClients) -> DeadLetterQueue:
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
    return sqs_dead_letter_queue(settings, clients.sqs, clients.s3)


def routes_factory(settings: Settings, clients: PipelineClients) -> RoutesFactory:
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
