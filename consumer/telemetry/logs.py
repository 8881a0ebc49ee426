"""Structured logs: JSON lines on stdout (what ECS's awslogs driver ships to CloudWatch).

Item contents are never logged at info level: log events carry positions (shard, sequence
number), counts and error types, not images.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # No file bound here: each logger writes to whatever sys.stdout is when it is made
        # (tests swap it; a bound file object could be closed by then).
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    # Libraries' own logging (botocore, aiohttp) only from warnings up, on stderr.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)


def quiet_logging() -> None:
    """For CLI commands whose stdout is their output: service logs go to stderr, warnings up."""
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _stderr_logger(*args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)
