"""`consumer backfill`: bring a new replica, search index or audit trail up to the existing
table, stitched to the stream (README "Backfill").

A thin layer: parses the options, loads the settings, hands over to `consumer.snapshot`.
Exit codes: 0 done, 1 failed (or a data file could not be read: the rest was applied),
2 bad input, 130 interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from consumer.cli.options import add_config_option, from_args, progress_logging
from consumer.cli.snapshot_options import add_run_options, add_table_read_options, worker_id
from consumer.compare.costs.prices import load_region
from consumer.settings import Settings, load_settings
from consumer.snapshot.backfill import (
    PURPOSE,
    Backfill,
    BackfillError,
    BackfillOutcome,
    BackfillRequest,
    chosen_pipelines,
)
from consumer.snapshot.dry_run import estimate_backfill, render_estimate
from consumer.snapshot.progress import ProgressView
from consumer.snapshot.segments import SnapshotConflict, SnapshotLeases


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "backfill",
        help="apply the table's existing items to the sinks (export or parallel scan)",
        description=(
            "Apply a snapshot of the source table (an export, or a parallel Scan) through the "
            "same versioned sinks as the stream, so a new replica or index holds every item. "
            "Items carry the snapshot time as their version: any change the stream delivers "
            "after it wins, deletes included. Several processes can run it together; a "
            "stopped backfill resumes where it was when run again."
        ),
    )
    add_config_option(parser)
    add_table_read_options(
        parser,
        pipelines_help="comma-separated, of audit,search,replication (default: the enabled ones)",
        segments=8,
        workers=4,
        read_units_help="read at most R read units per second, all processes of the backfill "
        "together (Scan; default no limit)",
    )
    parser.add_argument(
        "--source",
        choices=["export", "scan"],
        default="export",
        help="export (ExportTableToPointInTime; needs point-in-time recovery) or scan",
    )
    parser.add_argument("--export-arn", metavar="ARN", help="use this completed export")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the item count, size, estimated duration and cost; write nothing",
    )
    parser.add_argument(
        "--abandon",
        action="store_true",
        help="end the table's running backfill (its progress is kept, not resumed)",
    )
    parser.add_argument(
        "--skip-stitch-check",
        action="store_true",
        help="do not check that the stream covers the snapshot time (only when the "
        "pipelines have been live since before it)",
    )
    add_run_options(parser)
    parser.set_defaults(handler=run)


def request_from(args: argparse.Namespace) -> BackfillRequest:
    return from_args(
        BackfillRequest,
        args,
        source="export" if args.export_arn else args.source,
        worker_id=worker_id(args),
        check_stitching=not args.skip_stitch_check,
    )


def summary_line(outcome: BackfillOutcome) -> str:
    state = "OK" if outcome.finished and not outcome.failed_parts else "FAILED"
    if not outcome.finished:
        state = "PARTIAL"
    return (
        f"backfill: {state} snapshot={outcome.snapshot_id} source={outcome.source} "
        f"backfilled={outcome.items} bytes={outcome.size} parts={outcome.parts} "
        f"failed_parts={len(outcome.failed_parts)} dlq={outcome.parked} "
        f"read_here={outcome.read_here} ({outcome.elapsed_s:.1f} s)"
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    bar = progress_logging(settings, args.progress, sys.stderr.isatty())
    request = request_from(args)
    try:
        if args.dry_run:
            return asyncio.run(_dry_run(settings, request))
        if args.abandon:
            return asyncio.run(_abandon(settings, request))
        view = None if args.progress == "none" else ProgressView(tty=bar)
        outcome = asyncio.run(Backfill(settings, request, view=view).run())
    except (BackfillError, SnapshotConflict) as error:
        print(f"consumer: backfill: {error}", file=sys.stderr)
        return 2 if isinstance(error, SnapshotConflict) else 1
    except KeyboardInterrupt:
        print("backfill: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    for failed in outcome.failed_parts:
        print(f"consumer: backfill: {failed}", file=sys.stderr)
    print(summary_line(outcome), flush=True)
    return 0 if outcome.finished and not outcome.failed_parts else 1


async def _dry_run(settings: Settings, request: BackfillRequest) -> int:
    pipelines = chosen_pipelines(settings, request.pipelines)
    async with settings.aws.endpoints().aio_client("dynamodb") as dynamodb:
        try:
            table = (await dynamodb.describe_table(TableName=request.table))["Table"]
        except dynamodb.exceptions.ResourceNotFoundException:
            raise BackfillError(
                f"table {request.table!r} does not exist in {settings.aws.region} (--table)"
            ) from None
    estimate = estimate_backfill(
        table,
        source=request.source,
        pipelines=pipelines,
        workers=request.workers,
        max_read_units=request.max_read_units,
        prices=load_region(settings.aws.region),
    )
    for line in render_estimate(estimate):
        print(f"backfill --dry-run: {line}")
    return 0


async def _abandon(settings: Settings, request: BackfillRequest) -> int:
    async with settings.aws.endpoints().aio_client("dynamodb") as dynamodb:
        leases = SnapshotLeases(dynamodb, settings.lease_table)
        running = await leases.current(PURPOSE, request.table)
        if running is None:
            print(f"backfill: no backfill of {request.table} is running")
            return 0
        await leases.end(running)
    print(f"backfill: abandoned snapshot {running.snapshot_id} of {request.table}")
    return 0
