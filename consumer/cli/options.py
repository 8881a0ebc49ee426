"""Options shared by the commands that read the service's settings."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML settings file (environment variables CONSUMER_* override it)",
    )


def non_negative_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds, zero or more."""
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, got {text!r}")
    return value


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 1-65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number (1-65535), got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (1-65535), got {text!r}")
    return value


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low} to {high}, got {text!r}")
        return value

    return parse


def positive_number(what: str) -> Callable[[str], float]:
    """An argparse type: a finite number of `what` above zero (nan, inf, 0, -1 refused)."""

    def parse(text: str) -> float:
        value = _number(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be a number of {what} above 0, got {text!r}")
        return value

    return parse


# A finite number of seconds above zero (nan, inf, 0, -1 refused).
positive_seconds = positive_number("seconds")


def command_parser(
    subcommands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    module_doc: str | None,
) -> argparse.ArgumentParser:
    """A subcommand whose --help shows its module docstring after the first paragraph."""
    return subcommands.add_parser(
        name,
        help=help_text,
        description=module_doc.split("\n\n", 1)[1] if module_doc else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def pipeline_list(text: str) -> tuple[str, ...]:
    """A comma-separated list of pipeline names ("replication,search")."""
    return tuple(part.strip() for part in text.split(",") if part.strip())
