"""`consumer replay`: re-run pipelines over the changes of a time range (docs/replay.md).

A thin layer: parses the options, loads the settings, sets up logging and signals, and hands
over to `consumer.replay.run_replay`. Exit codes: 0 done, 1 failed, 2 bad input,
130 interrupted (the replay resumes when run again).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys

from consumer.cli.options import add_config_option, non_negative_seconds
from consumer.replay import PIPELINES, ReplayOptions, Source, run_replay
from consumer.settings import Settings, load_settings
from consumer.telemetry.logs import configure_logging, quiet_logging

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
        dest="from_time",
        required=True,
        metavar="TIME",
        help="arrival time to start at: ISO 8601 with a zone (2026-11-27T21:00:00Z), "
        "relative (-2h, -3d), or TRIM_HORIZON (the oldest record)",
    )
    parser.add_argument(
        "--to",
        dest="to_time",
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
        type=_worker_count,
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


def _worker_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"must be 1-{MAX_WORKERS} worker processes on this host, got {text}"
        )
    return value


def _pipelines(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(","))


def options_from(args: argparse.Namespace) -> ReplayOptions:
    return ReplayOptions(
        from_text=args.from_time,
        to_text=args.to_time,
        pipelines=args.pipelines,
        workers=args.workers,
        source=Source(args.source),
        dry_run=args.dry_run,
        replay_name=args.replay_name,
        table=args.table,
        archive_bucket=args.archive_bucket,
        archive_prefix=args.archive_prefix,
        grace_s=args.to_grace,
        progress=args.progress,
        keep_lease_table=args.keep_lease_table,
        accept_expired_tombstones=args.accept_expired_tombstones,
        worker_process=args.worker_process,
        config=args.config,
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    options = options_from(args)
    bar = options.progress == "bar" or (options.progress == "auto" and sys.stdout.isatty())
    if bar:
        quiet_logging()  # the live line owns stdout; warnings go to stderr
    else:
        configure_logging(settings.telemetry.log_level, settings.telemetry.log_format)
    return asyncio.run(_main(settings, options))


async def _main(settings: Settings, options: ReplayOptions) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1 and main_task is not None:
            main_task.cancel()  # a second signal: stop waiting for the graceful stop
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    try:
        return await run_replay(settings, options, stop)
    except asyncio.CancelledError:
        return 130
