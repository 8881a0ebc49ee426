"""The "sinks equal the table" check of the demo, the chaos run and the integration tests:
`consumer verify` run once, in process, with nothing to wait for (the caller has stopped the
writers or drained the consumer), every differing key listed. One implementation of the check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from consumer.settings import Settings
from consumer.verify.model import Kind
from consumer.verify.run import Verify, VerifyRequest

# How each kind reads in a difference line (the wording the chaos report counts by).
_WORDING = {Kind.MISSING: "is missing", Kind.STALE: "differs", Kind.EXTRA: "should not be there"}
_LABEL = {"replication": "replica", "search": "search"}


def settings_from_environment(env: Mapping[str, str]) -> Settings:
    """Settings from CONSUMER_* variables given as a dict (without touching os.environ)."""
    values: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("CONSUMER_"):
            continue
        path = name.removeprefix("CONSUMER_").lower().split("__")
        node = values
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return Settings(**values)


@dataclass(frozen=True)
class SinkCheck:
    """One line per differing item ("replica: item pk=… is missing"; none when every sink
    equals the table), and the items found equal per pipeline."""

    lines: list[str]
    equal: dict[str, int]


def check_sinks(
    settings: Settings,
    table: str,
    *,
    pipelines: tuple[str, ...] = (),
    expected_missing: Callable[[str, str], bool] | None = None,
    recheck_after_s: float = 0.0,
) -> SinkCheck:
    """Verifies the sinks of `settings` against `table`. `expected_missing(pipeline,
    key_text)`: items a sink is meant to lack (records it refuses by design)."""
    request = VerifyRequest(
        table=table,
        pipelines=pipelines,
        segments=1,
        recheck_after_s=recheck_after_s,
        measure_lag=False,
        worker_id="check",
        first_keys=1_000_000,
    )
    report = asyncio.run(Verify(settings, request).run())
    lines = []
    for name, tally in report.pipelines.items():
        for kind, keys in tally.first.items():
            for key in keys:
                if kind is Kind.MISSING and expected_missing and expected_missing(name, key):
                    continue
                lines.append(f"{_LABEL.get(name, name)}: item {key} {_WORDING[kind]}")
    equal = {name: tally.counts[Kind.EQUAL] for name, tally in report.pipelines.items()}
    return SinkCheck(lines, equal)
