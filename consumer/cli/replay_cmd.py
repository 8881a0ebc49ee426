"""`consumer replay`: re-run pipelines over the changes of a time range (docs/replay.md).

A thin layer: parses the options, loads the settings, sets up logging and signals, and hands
over to `consumer.replay.run_replay`. Exit codes: 0 done, 1 failed, 2 bad input,
130 interrupted (the replay resumes when run again).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys

from consumer.cli.options import (
    NOT_WHOLE,
    add_config_option,
    from_args,
    non_negative_seconds,
    progress_logging,
    until_stopped,
    whole_number,
)
from consumer.replay import PIPELINES, ReplayOptions, Source, run_replay
from consumer.settings import load_settings

# Each replay worker is a process on this host with its own clients and read loop: past a
# few dozen they only contend for the same cores (and each shard is read by one at a time).
MAX_WORKERS = 64

RELATIVE_OR_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$|^-(\d+(\.\d+)?[smhdw])+$")


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "replay",
        help="replay changes from a chosen time through the pipelines",
        description=(
            "Replay the changes of a time range from the stream (or the audit archive) "
            "through the chosen pipelines, under the replay's own name and lease table, "
            "without touching the live service. Sinks are versioned: a replay never "
            "regresses newer state."
        ),
    )
    # `--from -2h` is a value, not an option: argparse takes a leading "-" for an option
    # unless the text looks like a negative number, so relative times count as numbers here
    # (no option of this command looks like one).
    parser._negative_number_matcher = RELATIVE_OR_NUMBER
    add_config_option(parser)
    parser.add_argument(
        "--from",
        dest="from_text",
        required=True,
        metavar="TIME",
        help="arrival time to start at: ISO 8601 with a zone (2026-11-27T21:00:00Z), "
        "relative (-2h, -3d), or TRIM_HORIZON (the oldest record)",
    )
    parser.add_argument(
        "--to",
        dest="to_text",
        metavar="TIME",
        help="apply changes made up to this time (default: now, the stream's tip)",
    )
    parser.add_argument(
        "--pipelines",
        type=_pipelines,
        metavar="LIST",
        help=f"comma-separated, of {','.join(PIPELINES)} (default: the enabled ones but audit)",
    )
    parser.add_argument(
        "--workers",
        type=whole_number(
            1, MAX_WORKERS, NOT_WHOLE, "must be 1-{high} worker processes on this host, got {text}"
        ),
        default=1,
        metavar="N",
        help="replay worker processes on this host (N-1 are started next to this one), "
        f"1-{MAX_WORKERS}",
    )
    parser.add_argument(
        "--source",
        choices=[source.value for source in Source],
        default=Source.STREAM.value,
        help="read the Kinesis stream (default) or the audit archive in S3",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="count the records, estimate time and read cost; write nothing",
    )
    parser.add_argument(
        "--replay-name",
        metavar="NAME",
        help="the replay's application name (default <application>-replay-<from>); "
        "its lease table is NAME-leases",
    )
    parser.add_argument(
        "--to-grace",
        dest="grace_s",
        type=non_negative_seconds,
        default=60.0,
        metavar="SECONDS",
        help="read records that arrived up to this long after --to (late changes)",
    )
    parser.add_argument(
        "--progress",
        choices=["auto", "bar", "log", "none"],
        default="auto",
        help="live line on a terminal, log lines otherwise (auto)",
    )
    parser.add_argument(
        "--accept-expired-tombstones",
        action="store_true",
        help="replay into replication from before its tombstones' lifetime "
        "(pipelines.replication.tombstone_ttl_s): deleted items may come back",
    )
    parser.add_argument(
        "--keep-lease-table",
        action="store_true",
        help="keep the replay's lease table after a complete replay",
    )
    archive = parser.add_argument_group("archive source")
    archive.add_argument("--table", help="the source table in the archive (default: the only one)")
    archive.add_argument("--archive-bucket", help="default: pipelines.audit.bucket")
    archive.add_argument("--archive-prefix", help="default: pipelines.audit.prefix")
    parser.add_argument("--worker-process", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def _pipelines(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(","))


def options_from(args: argparse.Namespace) -> ReplayOptions:
    return from_args(ReplayOptions, args, source=Source(args.source))


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    options = options_from(args)
    # The live line owns stdout; with it, warnings go to stderr.
    progress_logging(settings, options.progress, sys.stdout.isatty())
    return asyncio.run(until_stopped(lambda stop: run_replay(settings, options, stop)))
