"""The options `consumer backfill` and `consumer verify` share: both read the source table
through the same leased, rate-limited parallel Scan (consumer.snapshot.table_reader)."""

from __future__ import annotations

import argparse
import os
import socket

from consumer.cli.options import pipeline_list, positive_number, whole_number

positive_count = whole_number(1, 1_000_000)
read_units = positive_number("read units")


def add_table_read_options(
    parser: argparse.ArgumentParser,
    *,
    pipelines_help: str,
    segments: int,
    workers: int,
    read_units_help: str,
) -> None:
    parser.add_argument("--table", required=True, help="the source DynamoDB table")
    parser.add_argument(
        "--pipelines", type=pipeline_list, default=(), metavar="LIST", help=pipelines_help
    )
    parser.add_argument(
        "--segments",
        type=positive_count,
        default=segments,
        metavar="N",
        help=f"Scan segments ({segments})",
    )
    parser.add_argument(
        "--workers",
        type=positive_count,
        default=workers,
        metavar="N",
        help="readers in this process",
    )
    parser.add_argument("--max-read-units", type=read_units, metavar="R", help=read_units_help)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        choices=["auto", "bar", "log", "none"],
        default="auto",
        help="a bar on a terminal, log lines otherwise (auto)",
    )
    parser.add_argument("--worker-id", help="this process's name in the leases (default host-pid)")
    # Small Scan pages make local tests and benchmarks take many checkpoints.
    parser.add_argument("--page-items", type=positive_count, help=argparse.SUPPRESS)


def worker_id(args: argparse.Namespace) -> str:
    given: str | None = args.worker_id
    return given or f"{socket.gethostname()}-{os.getpid()}"
