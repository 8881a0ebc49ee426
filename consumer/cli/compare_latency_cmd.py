"""`consumer compare latency`: end-to-end latency per read mode, from table write to sink apply.

Without `--config` it runs on an embedded local stack (moto server + kinesis-mock, started and
stopped here); emulator latencies are not AWS latencies and the report says so. With
`--config FILE` it uses the endpoints and pipelines of those settings (real AWS) and writes
probe items into `--table NAME`, which needs `--yes`. How it measures: consumer/compare/latency/.

Exit status: 0 when every sink applied every probe in every mode; 1 when the report is
incomplete (it is still printed) or the run failed (one line on stderr); 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, cast

from consumer.compare.latency.environment import MODES, Environment, LatencyError, Mode
from consumer.compare.latency.report import LatencyReport
from consumer.compare.latency.runner import RunOptions, measure_latency
from consumer.compare.latency.session import SessionOptions
from consumer.compare.latency.writer import ProbeWriteError
from consumer.local.stack import LocalStackError
from consumer.settings import load_settings
from consumer.telemetry.logs import quiet_logging

if TYPE_CHECKING:
    Actions = argparse._SubParsersAction[argparse.ArgumentParser]

PROG = "consumer compare latency"
DEFAULTS = SessionOptions()


class InputError(ValueError):
    """A bad option value; the message is one line naming the option."""


def register_action(actions: Actions) -> None:
    """Add `compare latency` to the `compare` actions."""
    parser = actions.add_parser(
        "latency",
        help="end-to-end latency per read mode (efo, polling, streams), write to sink apply",
        description=(
            "Write probe items into the source table and measure, per read mode and sink, the "
            "time from each write to the sink's apply (p50, p90, p99, max; nearest rank) and "
            "the consumer's share of it. Local stack by default; --config FILE for AWS."
        ),
    )
    parser.add_argument(
        "--changes",
        default=str(DEFAULTS.probes),
        metavar="N",
        help=f"probes written per mode (default: {DEFAULTS.probes})",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        metavar="LIST",
        help=f"comma-separated read modes, measured in this order (default: {','.join(MODES)})",
    )
    parser.add_argument(
        "--rate",
        default=f"{DEFAULTS.rate_per_s:g}",
        metavar="R",
        help=f"probes per second, a steady pace (default: {DEFAULTS.rate_per_s:g})",
    )
    parser.add_argument(
        "--timeout",
        default=f"{DEFAULTS.settle_timeout_s:g}",
        metavar="SECONDS",
        help="how long to wait for the last probes after the last write (default: "
        f"{DEFAULTS.settle_timeout_s:g})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    aws = parser.add_argument_group("against AWS (the settings' endpoints instead of local)")
    aws.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML settings file (environment variables CONSUMER_* override it): its "
        "endpoints, stream and pipelines are measured",
    )
    aws.add_argument(
        "--table", default=None, metavar="NAME", help="source table to write probe items to"
    )
    aws.add_argument(
        "--yes", action="store_true", help="confirm writing (and deleting) probe items there"
    )
    parser.set_defaults(handler=run)


def _number(option: str, text: str, low: float, high: float, integer: bool = False) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise InputError(f"{option} must be {kind}, got {text!r}") from None
    if not low <= value <= high:
        raise InputError(f"{option} must be between {low:g} and {high:g}, got {text}")
    return value


def parse_modes(text: str) -> tuple[Mode, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODES]
    if not names or unknown:
        raise InputError(
            f"--modes takes a comma-separated list of {', '.join(MODES)}, got {text!r}"
        )
    if len(set(names)) != len(names):
        raise InputError(f"--modes names a mode twice: {text!r}")
    return tuple(cast(Mode, name) for name in names)


def options_from_args(args: argparse.Namespace) -> RunOptions:
    """The run options; raises InputError naming the option."""
    session = SessionOptions(
        probes=int(_number("--changes", args.changes, 1, 100_000, integer=True)),
        rate_per_s=_number("--rate", args.rate, 0.1, 1000),
        settle_timeout_s=_number("--timeout", args.timeout, 1, 3600),
    )
    return RunOptions(modes=parse_modes(args.modes), session=session)


def _progress(message: str) -> None:
    print(f"latency: {message}", file=sys.stderr, flush=True)


def _print(report: LatencyReport, as_json: bool) -> int:
    from consumer.compare.latency.render import render_json, render_text

    sys.stdout.write(render_json(report) if as_json else render_text(report))
    sys.stdout.flush()
    return 0 if report.ok else 1


def _run_local(options: RunOptions, as_json: bool) -> int:
    from consumer.compare.latency.local_env import LocalEnvironment
    from consumer.local.stack import LocalStack

    quiet_logging()
    with tempfile.TemporaryDirectory(prefix="consumer-latency-") as work:
        _progress("starting the local stack (moto server + kinesis-mock)")
        with LocalStack(Path(work) / "stack") as stack:
            environment = LocalEnvironment(stack, Path(work) / "search")
            report = measure_latency(environment, options, progress=_progress)
    return _print(report, as_json)


def _run_aws(args: argparse.Namespace, options: RunOptions) -> int:
    from consumer.compare.latency.aws_env import AwsEnvironment

    settings = load_settings(args.config)
    quiet_logging()
    environment: Environment = AwsEnvironment(settings, args.table)
    report = measure_latency(environment, options, progress=_progress)
    return _print(report, args.json)


def run(args: argparse.Namespace) -> int:
    """Handler of `compare latency`."""
    try:
        options = options_from_args(args)
        if args.config is None and (args.table is not None or args.yes):
            raise InputError(
                "--table and --yes go with --config FILE (the local run makes its own)"
            )
        if args.config is not None and (args.table is None or not args.yes):
            raise InputError(
                "--config measures against real endpoints and writes probe items into a table: "
                "give --table NAME and --yes"
            )
    except ValueError as error:  # InputError, and the option objects' own checks
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    try:
        if args.config is None:
            return _run_local(options, args.json)
        return _run_aws(args, options)
    except (LatencyError, ProbeWriteError, LocalStackError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
