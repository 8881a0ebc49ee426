"""A replay request and its identity: what to replay, from which shards, into which
pipelines, under which name, and the window recorded on its lease table. Each problem is
found up front and is one line (ReplayInputError).

A replay's lease table (`<name>-leases`) carries its window as a tag (`consumerReplayWindow`;
the lease code reads only items): its checkpoints cover records its `--to` skipped, so a rerun
under the same name only continues that window (docs/replay.md, "Reruns": `reconcile`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import astuple, dataclass, replace
from typing import Any

import orjson
from botocore.exceptions import ClientError

from consumer.aws.errors import error_code
from consumer.aws.shards import KinesisShardLister
from consumer.replay.window import ReplayInputError, ReplayWindow, compact_ms, iso_us, utc_datetime
from consumer.settings import Settings

PIPELINES = ("audit", "search", "replication")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
TAG = "consumerReplayWindow"


class Source(enum.StrEnum):
    STREAM = "stream"
    ARCHIVE = "archive"


@dataclass(frozen=True)
class ReplayRequest:
    """A checked request. `name` is the replay's application name (its lease table is
    `<name>-leases`)."""

    window: ReplayWindow
    pipelines: tuple[str, ...]
    source: Source
    name: str
    workers: int = 1

    @property
    def lease_table(self) -> str:
        return f"{self.name}-leases"


def select_pipelines(
    settings: Settings, requested: Sequence[str] | None, source: Source
) -> tuple[str, ...]:
    """The pipelines to replay into; by default the enabled ones but audit (replaying into the
    archive would add a second copy of every line: ask for it by name to rebuild it)."""
    enabled = settings.enabled_pipelines()
    if requested is None:
        chosen = tuple(name for name in enabled if name != "audit")
        if not chosen:
            raise ReplayInputError(
                "no pipeline to replay into: enable search or replication in the settings "
                "(pipelines.<name>.enabled), or name one with --pipelines"
            )
        return chosen
    names = [name.strip().lower() for name in requested if name.strip()]
    if not names:
        raise ReplayInputError(f"--pipelines is empty; choose from {', '.join(PIPELINES)}")
    unknown = [name for name in names if name not in PIPELINES]
    if unknown:
        raise ReplayInputError(
            f"unknown pipeline {', '.join(repr(n) for n in unknown)} in --pipelines; "
            f"valid: {', '.join(PIPELINES)}"
        )
    missing = [name for name in names if name not in enabled]
    if missing:
        first = missing[0]
        raise ReplayInputError(
            f"pipeline {first} is not configured: enable it in the settings "
            f"(pipelines.{first}.enabled = true, or CONSUMER_PIPELINES__{first.upper()}__ENABLED"
            "=true) with its target"
        )
    if source is Source.ARCHIVE and "audit" in names:
        raise ReplayInputError(
            "--pipelines audit with --source archive would copy the archive onto itself"
        )
    return tuple(dict.fromkeys(names))


def replay_name(settings: Settings, from_ms: int | None, explicit: str | None) -> str:
    """`--replay-name`, or `<application>-replay-<from, compact>`."""
    name = explicit or f"{settings.application}-replay-{compact_ms(from_ms)}"
    if not _NAME.match(name):
        raise ReplayInputError(
            f"--replay-name {name!r}: use 1-200 letters, digits, '-', '_' or '.'"
        )
    if name == settings.application:
        raise ReplayInputError(
            f"--replay-name {name!r} is the live application's name: a replay needs its own"
        )
    return name


def check_workers(workers: int, source: Source) -> list[str]:
    """Warnings for `--workers` (ReplayInputError below 1)."""
    if workers < 1:
        raise ReplayInputError(f"--workers must be at least 1, got {workers}")
    if source is Source.ARCHIVE and workers > 1:
        return ["--workers is ignored with --source archive: one process reads the archive"]
    return []


def replay_settings(settings: Settings, request: ReplayRequest) -> Settings:
    """The live settings adjusted for a replay (docs/replay.md, "Isolation from the live
    service"): only the chosen pipelines, no `max_record_age_s` (replayed records are old by
    design), the replay's name and lease table, a worker id per process, polling reads.
    Constructing it does no I/O."""
    pipelines = settings.pipelines
    updates = {}
    for name in PIPELINES:
        section = getattr(pipelines, name)
        retry = section.retry.model_copy(update={"max_record_age_s": -1})
        updates[name] = section.model_copy(
            update={"enabled": name in request.pipelines, "retry": retry}
        )
    return settings.model_copy(
        update={
            "application": request.name,
            "pipelines": pipelines.model_copy(update=updates),
            "leases": settings.leases.model_copy(update={"table": None, "worker_id": None}),
            "stream": settings.stream.model_copy(update={"mode": "polling"}),
        }
    )


@dataclass(frozen=True)
class RecordedWindow:
    from_ms: int | None
    to_us: int
    grace_ms: int
    pipelines: tuple[str, ...]
    source: str
    to_given: bool = True  # False: the replay was "up to now" (no --to)

    @classmethod
    def of(cls, request: ReplayRequest, to_given: bool = True) -> RecordedWindow:
        window = request.window
        return cls(
            window.from_ms,
            window.to_us,
            window.grace_ms,
            tuple(sorted(request.pipelines)),
            request.source.value,
            to_given,
        )

    def tag_value(self) -> str:
        return orjson.dumps(astuple(self)).decode()

    @classmethod
    def from_tag(cls, text: str) -> RecordedWindow:
        from_ms, to_us, grace_ms, pipelines, source, to_given = orjson.loads(text)
        return cls(
            from_ms, int(to_us), int(grace_ms), tuple(pipelines), str(source), bool(to_given)
        )

    def same_window(self, other: RecordedWindow) -> bool:
        return replace(self, to_given=other.to_given) == other

    def describe(self) -> str:
        start = "the trim horizon" if self.from_ms is None else iso_us(self.from_ms * 1000)
        return (
            f"from {start} to {iso_us(self.to_us)} into {', '.join(self.pipelines)} "
            f"(source {self.source})"
        )


async def recorded_window(client: Any, table: str) -> tuple[str, RecordedWindow | None] | None:
    """(table ARN, its recorded window or None) for an existing lease table; None if absent."""
    try:
        description = await client.describe_table(TableName=table)
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise
    arn = str(description["Table"]["TableArn"])
    tags = await client.list_tags_of_resource(ResourceArn=arn)
    for tag in tags.get("Tags", []):
        if tag.get("Key") == TAG:
            return arn, RecordedWindow.from_tag(str(tag["Value"]))
    return arn, None


def reconcile(
    request: ReplayRequest, recorded: RecordedWindow | None, explicit_to: bool
) -> ReplayRequest:
    """The request to run against an existing lease table (see the module docstring)."""
    wanted = RecordedWindow.of(request, explicit_to)
    if recorded is not None and recorded.same_window(wanted):
        return request
    remove = (
        "resume it with the same options, pick another --replay-name, or remove it "
        f"(aws dynamodb delete-table --table-name {request.lease_table})"
    )
    if recorded is None:
        raise ReplayInputError(
            f"replay {request.name} already has a lease table ({request.lease_table}) with no "
            f"recorded window, so it cannot be resumed safely; {remove}"
        )
    up_to_now = not explicit_to and not recorded.to_given
    if up_to_now and replace(recorded, to_us=wanted.to_us, grace_ms=wanted.grace_ms).same_window(
        wanted
    ):
        window = replace(
            request.window,
            to_ms=recorded.to_us // 1000,
            to_extra_us=recorded.to_us % 1000,
            grace_ms=recorded.grace_ms,
        )
        return replace(request, window=window)
    raise ReplayInputError(
        f"replay {request.name} exists for another window: {recorded.describe()}; this "
        f"request is {wanted.describe()}. Its checkpoints cover changes that window skipped, "
        f"so it cannot serve this one: {remove}"
    )


async def record_window(
    client: Any, table: str, request: ReplayRequest, to_given: bool = True
) -> None:
    """Tags a (new) lease table with the request's window."""
    found = await recorded_window(client, table)
    if found is not None and found[1] is None:
        await client.tag_resource(
            ResourceArn=found[0],
            Tags=[{"Key": TAG, "Value": RecordedWindow.of(request, to_given).tag_value()}],
        )


def shard_lister(client: Any, stream_arn: str, from_ms: int | None) -> KinesisShardLister:
    """A `checkpoints.discovery.ShardLister` of the replay's shards: ListShards FROM_TIMESTAMP
    lists every shard open at `--from` or opened after it, closed ones included, with their
    parents (AT_TIMESTAMP would miss the children of a later split); FROM_TRIM_HORIZON every
    shard within retention. Constructing one does no I/O."""
    shard_filter: dict[str, Any] = {"Type": "FROM_TRIM_HORIZON"}
    if from_ms is not None:
        shard_filter = {"Type": "FROM_TIMESTAMP", "Timestamp": utc_datetime(from_ms)}
    return KinesisShardLister(client, stream_arn=stream_arn, shard_filter=shard_filter)
