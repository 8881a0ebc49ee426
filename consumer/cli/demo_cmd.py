"""`consumer demo`: the whole service end to end on the embedded local stack."""

from __future__ import annotations

import argparse
import sys

from consumer.cli.options import from_args
from consumer.local.stack import LocalStackError


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "demo", help="run the service end to end on the embedded local stack"
    )
    parser.add_argument(
        "--changes", type=int, default=2000, help="changes to write (default 2000)"
    )
    parser.add_argument("--shards", type=int, default=4, help="Kinesis shards (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--duplicate-rate", type=float, default=0.05, help="share of changes sent twice"
    )
    parser.add_argument(
        "--reorder-rate", type=float, default=0.1, help="share of same-item change pairs swapped"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from consumer.local.demo import DemoOptions, run_demo

    if args.changes < 1 or args.shards < 1 or args.workers < 1:
        print("demo: --changes, --shards and --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        return run_demo(from_args(DemoOptions, args))
    except (LocalStackError, ValueError) as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
