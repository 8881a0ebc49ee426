"""Where a latency run happens: the contract between the runner and the local stack or AWS."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from consumer.compare.latency.probes import ProbeKeys
from consumer.compare.latency.writer import WrittenProbe
from consumer.settings import Settings

Mode = Literal["efo", "polling", "streams"]
MODES: tuple[Mode, ...] = ("efo", "polling", "streams")


class LatencyError(RuntimeError):
    """The run cannot go on; the message is one line for the user."""


@dataclass(frozen=True)
class ModeTarget:
    """Everything one mode's measurement needs.

    `settings`: the worker's settings (stream.mode is `mode`); `table`: the source table the
    probes go to, through `dynamodb` (a boto3 client), with keys built by `keys`.
    """

    mode: Mode
    settings: Settings
    table: str
    keys: ProbeKeys
    dynamodb: Any


def check_settings(settings: Settings, mode: Mode) -> None:
    """Raises LatencyError when the settings enable no pipeline (nothing to measure) or do
    not read the way `mode` says (CONSUMER_STREAM__MODE in the environment overrides what the
    run asked for)."""
    if not settings.enabled_pipelines():
        raise LatencyError("the settings enable no pipeline: there is no sink to measure")
    if settings.stream.mode != mode:
        raise LatencyError(
            f"the settings for mode {mode} read in mode {settings.stream.mode}: unset "
            "CONSUMER_STREAM__MODE in the environment (the run sets the mode itself)"
        )


class Environment(Protocol):
    """The local stack or AWS, as the runner sees it. Methods block (boto3); the runner calls
    them between modes, never while a worker runs.

    Order: `prepare` then `feeding` around each mode's measurement; `cleanup` once at the end,
    also after a failure.
    """

    name: str  # "local" or "aws"
    notes: tuple[str, ...]  # the caveats a reader of the report must know, one line each

    def prepare(self, mode: Mode, run_id: str) -> ModeTarget:
        """Create or look up what `mode` reads and writes; raises LatencyError."""
        ...

    def feeding(self, target: ModeTarget) -> AbstractContextManager[None]:
        """Whatever must run while the mode is measured to move changes from the table to
        the stream the worker reads (locally: the destination bridge; else nothing)."""
        ...

    def cleanup(self, probes: Sequence[WrittenProbe]) -> list[str]:
        """Remove what the run left behind that outlives it; returns one line per action."""
        ...
