"""`consumer run`: the service (one worker; run N of them as an ECS service)."""

from __future__ import annotations

import argparse
import asyncio
import signal

import structlog

from consumer import early_signals
from consumer.cli.options import add_config_option, positive_seconds, until_stopped
from consumer.service.runtime import serve
from consumer.settings import load_settings
from consumer.telemetry.logs import configure_logging

log = structlog.get_logger(__name__)


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser("run", help="run a worker of the consumer service")
    add_config_option(parser)
    parser.add_argument(
        "--until-idle",
        type=positive_seconds,
        metavar="SECONDS",
        help="burst mode: stop once no shard has delivered a record for SECONDS",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    configure_logging(settings.telemetry.log_level, settings.telemetry.log_format)
    return asyncio.run(
        until_stopped(
            lambda stop: serve(settings, stop, args.until_idle),
            _log_signal,
            early_signals.received,  # arrived while starting: stop as gracefully
        )
    )


def _log_signal(signum: int, count: int) -> None:
    log.info("worker.signal", signal=signal.Signals(signum).name, count=count)
