"""A replay request: what to replay, from where, into which pipelines, under which name.

Checked up front, each problem as one line (ReplayInputError): an unknown pipeline, a
pipeline the settings do not configure, audit from the archive, a name that cannot name a
lease table.

A replay runs under its own application name (default `<application>-replay-<from>`) with
its own lease table (`<name>-leases`), so it never touches the live service's leases or
checkpoints. Several replay workers with the same name share the shards through that table;
running the same command again after an interruption resumes from its checkpoints.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from consumer.replay.errors import ReplayInputError
from consumer.replay.times import compact_ms
from consumer.replay.window import ReplayWindow
from consumer.settings import Settings

PIPELINES = ("audit", "search", "replication")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


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
    """The pipelines to replay into.

    Without `--pipelines`: every pipeline the settings enable, except audit (replaying into
    the archive would add a second copy of every line; ask for it by name to rebuild a lost
    archive from the stream).
    """
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
    """The live settings adjusted for a replay (constructing it does no I/O):

    - only the chosen pipelines are on;
    - no pipeline parks a record for its age (`max_record_age_s`): replayed records are old
      by design;
    - the application name is the replay's, the lease table `<name>-leases`, the worker id
      per process (never the live service's fixed one);
    - reads poll (GetRecords), see `consumer.replay.stream` for why.
    """
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
