"""`consumer replay` on the command line: relative times parse as values, bad input is one
line on stderr and exit 2 before any AWS call, and extra workers get the exact same window."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path
from typing import Any

import pytest

from consumer.cli import build_parser
from consumer.cli.replay_cmd import options_from
from consumer.replay import ReplayOptions, ReplayRequest, ReplayWindow, Source, run_replay
from consumer.replay.request import RecordedWindow, reconcile
from consumer.replay.runner import Console, _resume_command, build_request, progress_mode
from consumer.replay.workers import spawn_workers, wait_workers, worker_argv
from consumer.settings import Settings

NOW = 1_795_813_200_000


STREAMS_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000"


def settings(mode: str = "polling") -> Settings:
    values: dict[str, Any] = {
        "application": "orders-cdc",
        "stream": {"name": "orders", "mode": mode, "dynamodb_stream_arn": STREAMS_ARN},
        "dlq": {"queue_url": "https://sqs/q"},
        "pipelines": {"replication": {"enabled": True, "table": "replica"}},
    }
    return Settings(**values)


def test_relative_times_are_values_not_options() -> None:
    args = build_parser().parse_args(
        ["replay", "--from", "-2h", "--to", "-30m", "--pipelines", "replication,search"]
    )
    options = options_from(args)
    assert options.from_text == "-2h" and options.to_text == "-30m"
    assert options.pipelines == ("replication", "search")
    assert options.source is Source.STREAM and options.workers == 1 and not options.dry_run


def replay(options: ReplayOptions, mode: str = "polling") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = asyncio.run(
        run_replay(settings(mode), options, asyncio.Event(), Console(out, err), now_ms=NOW)
    )
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ReplayOptions("2026-11-28T00:00:00Z"), "--from 2026-11-28T00:00:00Z is in the future"),
        (ReplayOptions("-2h", "-3h"), "is not after --from"),
        (ReplayOptions("-2h", "2026-11-28T00:00:00Z"), "--to 2026-11-28T00:00:00Z is in the"),
        (ReplayOptions("soon"), "--from 'soon' is not a time"),
        (ReplayOptions("-2h", pipelines=("replica",)), "unknown pipeline 'replica'"),
        (ReplayOptions("-2h", pipelines=("search",)), "pipeline search is not configured"),
        (ReplayOptions("-2h", workers=0), "--workers must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(options: ReplayOptions, message: str) -> None:
    code, out, err = replay(options)
    assert code == 2 and out == ""
    assert err.startswith("consumer replay: ") and message in err
    assert err.count("\n") == 1


def test_streams_mode_has_no_stream_to_replay() -> None:
    code, _, err = replay(ReplayOptions("-2h"), mode="streams")
    assert code == 2 and "--source archive" in err


def test_the_archive_needs_a_bucket() -> None:
    code, _, err = replay(ReplayOptions("-2h", source=Source.ARCHIVE))
    assert code == 2 and "needs the audit bucket" in err


def test_extra_workers_get_the_same_exact_window_and_name() -> None:
    request = ReplayRequest(
        ReplayWindow(NOW - 3_600_000, NOW, 30_000), ("replication",), Source.STREAM, "r-1", 3
    )
    argv = worker_argv(request, Path("live.toml"))
    assert argv[:4] == [sys.executable, "-m", "consumer", "replay"]
    flags = dict(zip(argv[4::2], argv[5::2], strict=False))
    assert flags["--from"] == "2026-11-27T20:00:00Z" and flags["--to"] == "2026-11-27T21:00:00Z"
    assert flags["--to-grace"] == "30" and flags["--replay-name"] == "r-1"
    assert flags["--workers"] == "1" and flags["--config"] == "live.toml"
    assert "--keep-lease-table" in argv and "--worker-process" in argv


def test_progress_is_a_live_line_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_mode("auto", Terminal()) == "bar"
    assert progress_mode("auto", io.StringIO()) == "log"
    assert progress_mode("none", Terminal()) == "none"


def test_extra_workers_that_outlive_a_complete_replay_are_stopped_not_failed() -> None:
    quick = [sys.executable, "-c", "raise SystemExit(0)"]
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    slow = [sys.executable, "-c", "import time; time.sleep(60)"]
    processes = [*spawn_workers(quick, 1), *spawn_workers(failing, 1), *spawn_workers(slow, 1)]
    exits = wait_workers(processes, grace_s=3, timeout_s=10)
    assert [(e.code, e.stopped, e.failed) for e in exits] == [
        (0, False, False),
        (3, False, True),
        (-15, True, False),  # SIGTERM
    ]


def test_the_printed_resume_command_carries_the_grace_and_is_accepted() -> None:
    """An interrupted replay with a non-default --to-grace prints a command that resumes it (the
    grace is part of the recorded window: without it the rerun is another window)."""
    first = ReplayOptions("-2h", grace_s=30, replay_name="r-1", config=Path("live.toml"))
    request, _ = build_request(settings(), first, NOW)
    line = _resume_command(request, first)
    assert "--to-grace 30" in line
    argv = line.split()
    assert argv[:2] == ["consumer", "replay"]
    again = options_from(build_parser().parse_args(argv[1:]))
    resumed, _ = build_request(settings(), again, NOW + 600_000)
    recorded = RecordedWindow.of(request, to_given=False)
    assert reconcile(resumed, recorded, explicit_to=again.to_text is not None) == request
