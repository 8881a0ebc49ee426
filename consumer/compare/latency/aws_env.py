"""Modes against the resources the settings name (real AWS endpoints, or any others).

Probes go into the source table given on the command line. Each mode runs a worker under its
own application, `<application>-latency-<mode>` (its own lease table and EFO consumer, never
the service's), from LATEST; `cleanup` removes those and the probe items. The workers apply
what they read to the configured sinks as a second consumer would (docs/latency.md, "Against
AWS").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.compare.latency.environment import LatencyError, Mode, ModeTarget, check_settings
from consumer.compare.latency.probes import ProbeKeys
from consumer.compare.latency.writer import ProbeWriter, WrittenProbe
from consumer.settings import Settings

APPLICATION_LIMIT = 100  # Settings.application
SUFFIX = "-latency-"


def _reason(error: ClientError | BotoCoreError) -> str:
    """A failed call's error code, or its message when it has none (a BotoCoreError)."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "")) or str(error)
    return str(error)


class AwsEnvironment:
    """The configured endpoints. Constructing does no I/O."""

    name = "aws"

    def __init__(self, settings: Settings, table: str) -> None:
        self._settings = settings
        self._table = table
        self._description: dict[str, Any] | None = None
        self._lease_tables: list[str] = []
        self._efo_consumers: list[str] = []
        self.notes: tuple[str, ...] = (
            f"probes were written to table {table}, then deleted (cleanup lines below)",
            "write and apply times come from this machine's clock, Kinesis arrival times from "
            "AWS's: clock skew moves time between upstream and consumer share, not the total",
            "upstream (efo, polling) is DynamoDB's Kinesis destination; streams mode reads the "
            "table's stream directly (its ApproximateCreationDateTime has 1 s resolution), so "
            "its consumer share is the whole end-to-end time",
            "the worker ran here, not on ECS or Lambda: network distance to the endpoints "
            "counts too",
        )

    def _table_description(self, dynamodb: Any) -> dict[str, Any]:
        if self._description is None:
            try:
                table: dict[str, Any] = dynamodb.describe_table(TableName=self._table)["Table"]
            except (ClientError, BotoCoreError) as error:
                raise LatencyError(
                    f"cannot describe source table {self._table}: {_reason(error)}"
                ) from error
            self._description = table
        return self._description

    def prepare(self, mode: Mode, run_id: str) -> ModeTarget:
        dynamodb = self._settings.aws.endpoints().client("dynamodb")
        table = self._table_description(dynamodb)
        settings = mode_settings(self._settings, mode, self._table, table)
        self._lease_tables.append(settings.lease_table)
        if mode == "efo":
            self._efo_consumers.append(settings.consumer_name)
        return ModeTarget(mode, settings, self._table, ProbeKeys.from_table(table), dynamodb)

    @contextmanager
    def feeding(self, target: ModeTarget) -> Iterator[None]:
        yield  # DynamoDB feeds the streams itself

    def cleanup(self, probes: Sequence[WrittenProbe]) -> list[str]:
        endpoints = self._settings.aws.endpoints()
        lines: list[str] = []
        if probes:
            keys = ProbeKeys.from_table(self._description) if self._description else None
            if keys is not None:
                writer = ProbeWriter(endpoints.client("dynamodb"), self._table, keys)
                deleted = writer.delete(probes)
                lines.append(f"cleanup: deleted {deleted} of {len(probes)} probe items")
        dynamodb = endpoints.client("dynamodb")
        for table in self._lease_tables:
            lines.append(_delete_table(dynamodb, table))
        if self._efo_consumers:
            kinesis = endpoints.client("kinesis")
            for consumer in self._efo_consumers:
                lines.append(_deregister(kinesis, self._settings, consumer))
        return lines


def mode_settings(
    base: Settings, mode: Mode, table_name: str, table: Mapping[str, Any]
) -> Settings:
    """The settings of `mode`'s worker: `base` under the application
    `<application>-latency-<mode>` (so its own lease table and EFO consumer), reading from
    LATEST without falling back from EFO to polling, with no health server, Prometheus port or
    EMF metrics. `table` is DescribeTable's `Table` of `table_name`. Raises LatencyError."""
    stream_update: dict[str, Any] = {
        "mode": mode,
        "initial_position": "LATEST",
        "fallback_to_polling": False,
        "consumer_name": None,
    }
    if mode == "streams":
        arn = base.stream.dynamodb_stream_arn or table.get("LatestStreamArn")
        enabled = table.get("StreamSpecification", {}).get("StreamEnabled", False)
        if not arn or not (enabled or base.stream.dynamodb_stream_arn):
            raise LatencyError(
                f"table {table_name} has no DynamoDB stream: enable one "
                "(NEW_AND_OLD_IMAGES) or leave streams out of --modes"
            )
        stream_update["dynamodb_stream_arn"] = arn
    elif not (base.stream.name or base.stream.arn):
        raise LatencyError(
            f"mode {mode} needs stream.name or stream.arn in the settings (the Kinesis "
            f"stream that table {table_name} streams its changes to)"
        )
    room = APPLICATION_LIMIT - len(SUFFIX) - len(mode)
    application = f"{base.application[:room]}{SUFFIX}{mode}"
    settings = base.model_copy(
        update={
            "application": application,
            "stream": base.stream.model_copy(update=stream_update),
            "leases": base.leases.model_copy(update={"table": None, "worker_id": None}),
            "telemetry": base.telemetry.model_copy(
                update={"health_port": None, "prometheus_port": None, "emf": False}
            ),
        }
    )
    check_settings(settings, mode)
    return settings


def _delete_table(dynamodb: Any, table: str) -> str:
    try:
        dynamodb.delete_table(TableName=table)
    except (ClientError, BotoCoreError) as error:
        if isinstance(error, ClientError) and _reason(error) == "ResourceNotFoundException":
            return f"cleanup: lease table {table} was not created"
        return f"cleanup: could not delete lease table {table}: {_reason(error)}"
    return f"cleanup: deleted lease table {table}"


def _deregister(kinesis: Any, settings: Settings, consumer: str) -> str:
    try:
        arn = settings.stream.arn
        if arn is None:
            summary = kinesis.describe_stream_summary(StreamName=settings.stream.name)
            arn = summary["StreamDescriptionSummary"]["StreamARN"]
        kinesis.deregister_stream_consumer(StreamARN=arn, ConsumerName=consumer)
    except (ClientError, BotoCoreError) as error:
        return f"cleanup: could not deregister EFO consumer {consumer}: {_reason(error)}"
    return f"cleanup: deregistered EFO consumer {consumer}"
