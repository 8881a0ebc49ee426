"""`consumer config show`: the effective settings (file, environment, defaults), no secrets."""

from __future__ import annotations

import argparse

import orjson

from consumer.cli.options import add_config_option
from consumer.settings import load_settings, redacted


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser("config", help="inspect the service's settings")
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print the effective settings as JSON")
    add_config_option(show)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    print(orjson.dumps(redacted(settings), option=orjson.OPT_INDENT_2).decode())
    return 0
