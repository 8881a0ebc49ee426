"""`consumer verify`: check that every sink equals the source table, and repair what differs
(README "Verify").

A thin layer: parses the options, loads the settings, hands over to `consumer.verify`.
Exit codes: 0 every sink equals the table (after `--repair`: nothing left to repair),
1 differences remain, 2 bad input (one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from consumer.cli.options import (
    add_config_option,
    from_args,
    non_negative_seconds,
    progress_logging,
)
from consumer.cli.snapshot_options import add_run_options, add_table_read_options, worker_id
from consumer.settings import Settings, load_settings
from consumer.snapshot.progress import ProgressView
from consumer.verify.metric import emf_lines
from consumer.verify.model import VerifyError, VerifyReport
from consumer.verify.report import as_json, as_table
from consumer.verify.run import Verify, VerifyRequest


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {text!r}")
    return value


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "verify",
        help="check that the replica and the search index equal the table (and --repair)",
        description=(
            "Read the source table (parallel, rate-limited Scan, segments shared through the "
            "lease table) and compare every item with the replica and the search index; find "
            "items the sinks hold that the table does not. A difference counts only if it "
            "outlives the consumer's lag. --repair applies the table's current state of each "
            "differing item through the same versioned sinks, then checks those items again."
        ),
    )
    add_config_option(parser)
    add_table_read_options(
        parser,
        pipelines_help="comma-separated, of replication,search (default: the enabled ones)",
        segments=4,
        workers=1,
        read_units_help="read at most R read units per second of the table in this process",
    )
    parser.add_argument(
        "--sample",
        type=_fraction,
        default=1.0,
        metavar="FRACTION",
        help="compare only this fraction of the items, chosen by key (the Scan still reads "
        "every item; the sinks are read for the sample only)",
    )
    parser.add_argument(
        "--recheck-after-s",
        type=non_negative_seconds,
        default=5.0,
        metavar="S",
        help="re-check a difference after at least S seconds, or the consumer's measured "
        "lag if longer (5)",
    )
    parser.add_argument("--repair", action="store_true", help="repair the differences found")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_run_options(parser)
    parser.set_defaults(handler=run)


def request_from(args: argparse.Namespace) -> VerifyRequest:
    return from_args(VerifyRequest, args, worker_id=worker_id(args))


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    bar = progress_logging(settings, args.progress, sys.stderr.isatty(), quiet=args.json)
    view = None if args.progress == "none" else ProgressView(tty=bar, label="verify")
    try:
        report = asyncio.run(Verify(settings, request_from(args), view=view).run())
    except VerifyError as error:
        print(f"consumer: verify: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("verify: interrupted", file=sys.stderr)
        return 130
    _emit_metric(settings, report, to_stderr=args.json)
    if args.json:
        print(as_json(report), flush=True)
    else:
        for line in as_table(report):
            print(line, flush=True)
    return 0 if report.remaining == 0 else 1


def _emit_metric(settings: Settings, report: VerifyReport, *, to_stderr: bool) -> None:
    telemetry = settings.telemetry
    if not telemetry.emf:
        return
    out = sys.stderr if to_stderr else sys.stdout
    for line in emf_lines(
        telemetry.emf_namespace, settings.application, int(time.time() * 1000), report
    ):
        print(line.decode(), file=out, flush=True)
