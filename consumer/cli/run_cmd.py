"""`consumer run`: the service (one worker; run N of them as an ECS service)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import structlog

from consumer import early_signals
from consumer.cli.options import add_config_option, positive_seconds
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
        default=None,
        metavar="SECONDS",
        help="burst mode: stop once no shard has delivered a record for SECONDS",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    configure_logging(settings.telemetry.log_level, settings.telemetry.log_format)
    if args.until_idle is not None and args.until_idle <= 0:
        print("consumer: --until-idle must be > 0 seconds", file=sys.stderr)
        return 2
    return asyncio.run(_main(settings, args.until_idle))


async def _main(settings: object, until_idle_s: float | None) -> int:
    from consumer.settings import Settings

    assert isinstance(settings, Settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        log.info("worker.signal", signal=signal.Signals(signum).name, count=signals)
        if signals > 1 and main_task is not None:
            main_task.cancel()  # a second signal: stop waiting for the graceful drain
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    for held in early_signals.received():  # arrived while starting: stop as gracefully
        on_signal(held)
    try:
        return await serve(settings, stop, until_idle_s)
    except asyncio.CancelledError:
        return 130
