"""Start-up checks: every configured destination is reachable before any lease is taken, since
a worker that cannot write holds its shards hostage (a typo in the replica table's name, issue
15.2; a wrong `stream.arn` ran with /readyz ready, issue 20). A missing or forbidden one is a
start-up error, one line naming the setting (exit 1, readiness never true).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.pipeline.processor import Route
from consumer.service.sinks import PipelineClients
from consumer.settings import Settings

CHECK_TIMEOUT_S = 30.0


class PreflightError(RuntimeError):
    """A destination that cannot be used; the message is one line naming the setting."""


def _why(error: BaseException) -> str:
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        return f"{detail.get('Code', 'error')}: {detail.get('Message', '')}".rstrip(": ")
    if isinstance(error, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT_S:.0f} s"
    return f"{type(error).__name__}: {error}"


async def _check(setting: str, what: str, call: Callable[[], Awaitable[Any]]) -> str | None:
    try:
        await asyncio.wait_for(call(), CHECK_TIMEOUT_S)
    except Exception as error:  # AWS, network, timeout, or a sink's own check: one line
        return f"{setting}: {what} is not usable ({_why(error)})"
    return None


def _stream_name_of(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


async def check_stream(settings: Settings, kinesis: Any) -> None:
    """`stream.arn` exists (by name it is looked up already), and agrees with `stream.name`."""
    stream = settings.stream
    if stream.mode == "streams" or not stream.arn:
        return
    if stream.name and _stream_name_of(stream.arn) != stream.name:
        raise PreflightError(
            f"stream.arn names stream {_stream_name_of(stream.arn)!r} but stream.name is "
            f"{stream.name!r}: give one of them, or make them agree"
        )
    problem = await _check(
        "stream.arn",
        f"stream {stream.arn}",
        lambda: kinesis.describe_stream_summary(StreamARN=stream.arn),
    )
    if problem:
        raise PreflightError(problem)


class KeySchemaMismatch(Exception):
    """The replica's primary key is not the source table's: every PutItem would fail."""


def _key_schema(description: Any) -> list[tuple[str, str]]:
    return sorted((k["AttributeName"], k["KeyType"]) for k in description["Table"]["KeySchema"])


def _source_table(settings: Settings) -> str | None:
    """The source table when it is known: Streams mode names it in the stream's ARN
    (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL); Kinesis mode does not."""
    arn = settings.stream.dynamodb_stream_arn
    if settings.stream.mode != "streams" or not arn or "/stream/" not in arn:
        return None
    return arn.split(":table/", 1)[-1].split("/stream/", 1)[0]


async def _check_replica(settings: Settings, replica: Any, table: str) -> None:
    replica_keys = _key_schema(await replica.describe_table(TableName=table))
    source = _source_table(settings)
    if source is None:
        return
    async with settings.aws.endpoints().aio_client("dynamodb") as dynamodb:
        source_keys = _key_schema(await dynamodb.describe_table(TableName=source))
    if replica_keys != source_keys:
        raise KeySchemaMismatch(
            f"its key {replica_keys} is not the key {source_keys} of source table {source!r}"
        )


async def check_dynamodb_stream(stream_arn: str, streams: Any) -> None:
    """Streams mode: `stream.dynamodb_stream_arn` names a DynamoDB stream that exists."""
    problem = await _check(
        "stream.dynamodb_stream_arn",
        f"DynamoDB stream {stream_arn}",
        lambda: streams.describe_stream(StreamArn=stream_arn, Limit=1),
    )
    if problem:
        raise PreflightError(problem)


async def check_destinations(
    settings: Settings, clients: PipelineClients, routes: Sequence[Route]
) -> None:
    """Asks each configured destination once; PreflightError with every problem, one a line."""
    pipelines = settings.pipelines
    checks: list[Awaitable[str | None]] = []

    def ask(setting: str, what: str, call: Callable[[], Awaitable[Any]]) -> None:
        checks.append(_check(setting, what, call))

    replica, s3, sqs = clients.replica_dynamodb, clients.s3, clients.sqs
    if pipelines.replication.enabled and replica is not None:
        table = str(pipelines.replication.table)
        what = f"replica table {table!r}"
        ask("pipelines.replication.table", what, partial(_check_replica, settings, replica, table))
    if pipelines.audit.enabled and s3 is not None:
        bucket = pipelines.audit.bucket
        ask("pipelines.audit.bucket", f"bucket {bucket!r}", lambda: s3.head_bucket(Bucket=bucket))
    if settings.dlq.queue_url and sqs is not None:
        queue = settings.dlq.queue_url
        attributes = ["MaximumMessageSize"]
        ask(
            "dlq.queue_url",
            f"queue {queue}",
            lambda: sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=attributes),
        )
    if settings.dlq.overflow_bucket and s3 is not None:
        overflow = settings.dlq.overflow_bucket
        ask("dlq.overflow_bucket", f"bucket {overflow!r}", lambda: s3.head_bucket(Bucket=overflow))
    for route in routes:
        check = getattr(route.sink, "check", None)
        if check is not None:
            ask(f"pipelines.{route.sink.name}", f"the {route.sink.name} destination", check)
    problems = [problem for problem in await asyncio.gather(*checks) if problem]
    if problems:
        raise PreflightError("; ".join(problems))


STREAM_TAG = "consumerStreamArn"


async def claim_lease_table(dynamodb: Any, table: str, stream_arn: str) -> None:
    """The lease table belongs to one stream: recorded as a table tag at first start (tags are
    invisible to the lease code and to KCL), compared at every start after. An application
    pointed at another stream would otherwise adopt that stream's leases and checkpoints and
    then fail on them forever."""
    try:
        arn = str((await dynamodb.describe_table(TableName=table))["Table"]["TableArn"])
        tags = (await dynamodb.list_tags_of_resource(ResourceArn=arn)).get("Tags", [])
        recorded = next((t["Value"] for t in tags if t.get("Key") == STREAM_TAG), None)
        if recorded is None:
            await dynamodb.tag_resource(
                ResourceArn=arn, Tags=[{"Key": STREAM_TAG, "Value": stream_arn}]
            )
    except (ClientError, BotoCoreError) as error:  # e.g. a role without ListTagsOfResource
        raise PreflightError(
            f"leases.table: cannot read or record the stream of {table!r} ({_why(error)})"
        ) from error
    if recorded is not None and recorded != stream_arn:
        raise PreflightError(
            f"leases.table {table!r} holds the leases of stream {recorded}, not of "
            f"{stream_arn}: use another application name (or leases.table) for this stream"
        )
