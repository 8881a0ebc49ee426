"""What the commands share: options, argparse types, logging for a progress bar, stop signals."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from consumer.telemetry.logs import configure_logging, quiet_logging

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from consumer.settings import Settings

Request = TypeVar("Request", bound="DataclassInstance")
NOT_WHOLE = "not a whole number: {text!r}"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML settings file (environment variables CONSUMER_* override it)",
    )


def non_negative_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds, zero or more."""
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, got {text!r}")
    return value


def whole_number(
    low: int,
    high: int,
    not_whole: str = "must be a whole number, got {text!r}",
    out_of_range: str = "must be {low} to {high}, got {text!r}",
) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`; the messages are templates of
    `text`, `low` and `high`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(not_whole.format(text=text)) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(out_of_range.format(text=text, low=low, high=high))
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


positive_seconds = positive_number("seconds")
_PORT = "must be a port number (1-65535), got {text!r}"
port_number = whole_number(1, 65535, _PORT, _PORT)


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


def from_args(cls: type[Request], args: argparse.Namespace, **given: Any) -> Request:
    """The dataclass `cls` from the options of its fields' names, `given` added or replacing."""
    fields = dataclasses.fields(cls)
    named = {field.name: getattr(args, field.name) for field in fields if hasattr(args, field.name)}
    return cls(**{**named, **given})


def progress_logging(
    settings: Settings, progress: str, terminal: bool, quiet: bool = False
) -> bool:
    """Whether `--progress` draws a bar (auto: on a `terminal`). With a bar (or `quiet`), logs go
    to stderr from warnings up, so they do not break the bar's line; else as the settings say."""
    bar = progress == "bar" or (progress == "auto" and terminal)
    if bar or quiet:
        quiet_logging()
    else:
        configure_logging(settings.telemetry.log_level, settings.telemetry.log_format)
    return bar


async def until_stopped(
    main: Callable[[asyncio.Event], Awaitable[int]],
    on_signal: Callable[[int, int], None] | None = None,
    held: Callable[[], list[int]] = list,
) -> int:
    """`main(stop)`, where SIGTERM or SIGINT sets `stop` and a second one cancels `main` (exit
    status 130). `on_signal(signum, count)` sees each; `held()`, called once the handlers are in
    place, gives the signals that arrived earlier (they count as if they arrived now)."""
    stop = asyncio.Event()
    main_task = asyncio.current_task()
    signals = 0

    def stop_on(signum: int) -> None:
        nonlocal signals
        signals += 1
        if on_signal is not None:
            on_signal(signum, signals)
        if signals > 1 and main_task is not None:
            main_task.cancel()  # a second signal: stop waiting for the graceful stop
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_on, signum)
    for early in held():
        stop_on(early)
    try:
        return await main(stop)
    except asyncio.CancelledError:
        return 130
