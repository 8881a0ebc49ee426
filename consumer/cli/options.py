"""Options shared by the commands that read the service's settings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consumer.settings import Settings, SettingsError, load_settings


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML settings file (environment variables CONSUMER_* override it)",
    )


def settings_or_exit(args: argparse.Namespace) -> Settings | None:
    """The settings, or None after printing one line per invalid setting to stderr."""
    try:
        return load_settings(args.config)
    except SettingsError as error:
        for line in error.lines:
            print(f"consumer: {line}", file=sys.stderr)
        return None
