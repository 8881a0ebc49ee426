"""The `consumer` command line: a thin layer that parses arguments and calls the service.

Each command group lives in its own module with a `register(subcommands)` function that adds
its parser and sets `handler`, a callable taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from consumer import __version__
from consumer.early_signals import hold_stop_signals

# Modules under consumer.cli that each register one command (group).
COMMAND_MODULES: tuple[str, ...] = (
    "local_cmd",
    "decode_cmd",
    "demo_cmd",
    "leases_cmd",
    "run_cmd",
    "config_cmd",
    "health_cmd",
    "search_cmd",
    "dlq_cmd",
    "compare_cmd",
    "replay_cmd",
    "backfill_cmd",
    "verify_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consumer",
        description="Kinesis consumer for DynamoDB change data capture.",
    )
    parser.add_argument("--version", action="version", version=f"consumer {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:  # imported here: after `main` held the stop signals
        importlib.import_module(f"consumer.cli.{name}").register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if next((a for a in arguments if not a.startswith("-")), None) == "run":
        hold_stop_signals()  # before the heavy imports: a SIGTERM now is a graceful stop
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    from consumer.settings import SettingsError  # imported by the commands already

    try:
        return handler(args)
    except SettingsError as error:  # a command's load_settings: one line per invalid setting
        for line in error.lines:
            print(f"consumer: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
