"""`consumer leases list|reset|import-kcl`: inspect and administer a lease table (endpoints
from the flags, else CONSUMER_ENDPOINT_*, AWS_REGION, else AWS defaults)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, astuple

from botocore.exceptions import BotoCoreError, ClientError

from checkpoints.admin import (
    heartbeat_age_s,
    lease_rows,
    observe_activity,
    reset_leases,
    scan_leases,
)
from checkpoints.errors import LeaseError, LeaseTableMissing
from checkpoints.kcl_import import KclImportError, import_kcl
from checkpoints.model import Checkpoint, Position
from checkpoints.settings import default_table_name
from checkpoints.table import LeaseTable
from consumer import setting_rules
from consumer.aws import AwsEndpoints
from consumer.cli.options import non_negative_seconds

ENV_DYNAMODB = "CONSUMER_ENDPOINT_DYNAMODB"
ENV_KINESIS = "CONSUMER_ENDPOINT_KINESIS"
ENV_REGION = "AWS_REGION"


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser("leases", help="inspect, reset or import the lease table")
    actions = parser.add_subparsers(dest="leases_action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="shard, owner, checkpoint, parents, state")
    _add_table_options(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")

    reset = actions.add_parser("reset", help="move every lease to a start position (stopped app)")
    _add_table_options(reset)
    reset.add_argument(
        "--to",
        required=True,
        type=_reset_position,
        metavar="TRIM_HORIZON|LATEST|AT_TIMESTAMP=<time>",
        help="AT_TIMESTAMP takes an ISO-8601 time (UTC if no zone) or epoch milliseconds",
    )
    _add_force_options(
        reset,
        "reset even if workers look alive",
        3.0,
        "watch heartbeats this long before deciding the application is stopped",
    )

    kcl = actions.add_parser("import-kcl", help="adopt a stopped KCL application's checkpoints")
    kcl.add_argument("--table", required=True, help="the KCL application's lease table")
    target = kcl.add_mutually_exclusive_group(required=True)
    target.add_argument("--app", help="our application name (lease table <app>-leases)")
    target.add_argument("--lease-table", help="our lease table, by name")
    kcl.add_argument("--stream", help="only this stream's leases (KCL multi-stream tables)")
    kcl.add_argument(
        "--at-timestamp",
        type=_timestamp,
        metavar="TIME",
        help="the time of leases KCL left at AT_TIMESTAMP (KCL does not store it)",
    )
    kcl.add_argument("--overwrite", action="store_true", help="replace leases we already have")
    _add_force_options(
        kcl,
        "import even if KCL leases still move",
        4.0,
        "watch the KCL table this long for renewals (KCL renews every ~3.3 s)",
    )
    _add_endpoint_options(kcl)

    for action in (listing, reset, kcl):
        action.set_defaults(handler=run)


def _add_table_options(parser: argparse.ArgumentParser) -> None:
    table = parser.add_mutually_exclusive_group(required=True)
    table.add_argument("--app", help="application name (lease table <app>-leases)")
    table.add_argument("--table", help="lease table name")
    _add_endpoint_options(parser)


def _add_force_options(
    parser: argparse.ArgumentParser, force_help: str, observe_s: float, observe_help: str
) -> None:
    parser.add_argument("--force", action="store_true", help=force_help)
    parser.add_argument(
        "--observe-s", type=non_negative_seconds, default=observe_s, help=observe_help
    )


def _add_endpoint_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", help=f"default: ${ENV_REGION} or us-east-1")
    parser.add_argument("--endpoint-url-dynamodb", help=f"default: ${ENV_DYNAMODB}")
    parser.add_argument("--endpoint-url-kinesis", help=f"default: ${ENV_KINESIS}")


class BadEndpoint(ValueError):
    """A region or endpoint URL that cannot work (one line naming the option)."""


def _checked(option: str, value: str, check: Callable[[str], str]) -> str:
    try:
        return check(value)
    except ValueError as error:
        raise BadEndpoint(f"{option} {value!r} {error}") from None


def _timestamp(text: str) -> Checkpoint:
    try:
        return Checkpoint.parse(f"AT_TIMESTAMP={text}")
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} ({error})") from error


def _reset_position(text: str) -> Checkpoint:
    try:
        checkpoint = Checkpoint.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    if checkpoint.position not in (Position.TRIM_HORIZON, Position.LATEST, Position.AT_TIMESTAMP):
        raise argparse.ArgumentTypeError("--to takes TRIM_HORIZON, LATEST or AT_TIMESTAMP=<time>")
    return checkpoint


def endpoints_from(args: argparse.Namespace) -> AwsEndpoints:
    urls: dict[str, str] = {}
    for service, flag, variable in (
        ("dynamodb", args.endpoint_url_dynamodb, ENV_DYNAMODB),
        ("kinesis", args.endpoint_url_kinesis, ENV_KINESIS),
    ):
        url = flag or os.environ.get(variable)
        if url:
            option = f"--endpoint-url-{service}" if flag else f"${variable}"
            urls[service] = _checked(option, url, setting_rules.endpoint_url)
    region = args.region or os.environ.get(ENV_REGION) or "us-east-1"
    option = "--region" if args.region else f"${ENV_REGION}"
    return AwsEndpoints(
        region=_checked(option, region, setting_rules.region_name), endpoint_urls=urls
    )


def run(args: argparse.Namespace) -> int:
    command = {"list": _list, "reset": _reset, "import-kcl": _import_kcl}[args.leases_action]
    try:
        return asyncio.run(command(args, endpoints_from(args)))
    except (BadEndpoint, LeaseError, KclImportError) as error:
        print(f"consumer leases: {error}", file=sys.stderr)
        return 2 if isinstance(error, BadEndpoint) else 1
    except (ClientError, BotoCoreError) as error:
        print(f"consumer leases: AWS call failed: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`consumer leases list | head`): not an error. Point stdout
        # at /dev/null so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _table_name(args: argparse.Namespace) -> str:
    return str(args.table) if args.table else default_table_name(args.app)


async def _existing_table(table: LeaseTable) -> None:
    if not await table.exists():
        raise LeaseTableMissing(f"lease table {table.name} does not exist")


async def _list(args: argparse.Namespace, endpoints: AwsEndpoints) -> int:
    async with LeaseTable.open(endpoints, _table_name(args)) as table:
        await _existing_table(table)
        snapshot = await scan_leases(table)
    rows = lease_rows(snapshot)
    if args.json:
        for row in rows:
            print(json.dumps(asdict(row)))
        for worker in snapshot.workers.values():
            print(json.dumps({"worker": worker.worker_id, "heartbeat_at": worker.heartbeat_at,
                              "leases": worker.lease_count, "fenced_by": worker.fenced_by}))
        return 0
    table_rows = [("SHARD", "OWNER", "CHECKPOINT", "PARENTS", "STATE"), *map(astuple, rows)]
    widths = [max(map(len, column)) for column in zip(*table_rows, strict=True)]
    for cells in table_rows:
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    if snapshot.workers:
        print()
        for worker in sorted(snapshot.workers.values(), key=lambda w: w.worker_id):
            age = heartbeat_age_s(worker.heartbeat_at)
            seen = f"heartbeat {age:.1f}s ago" if age is not None else "no heartbeat time"
            fenced = f", declared dead by {worker.fenced_by}" if worker.fenced_by else ""
            print(f"worker {worker.worker_id}: {worker.lease_count} leases, {seen}{fenced}")
    print(f"{len(rows)} leases, {len(snapshot.workers)} workers")
    return 0


async def _reset(args: argparse.Namespace, endpoints: AwsEndpoints) -> int:
    async with LeaseTable.open(endpoints, _table_name(args)) as table:
        await _existing_table(table)
        snapshot, activity = await observe_activity(table, args.observe_s)
        if not activity.idle and not args.force:
            running = sorted(activity.live_workers) or sorted(activity.moving_leases)
            print(
                "consumer leases: refusing to reset while the application runs "
                f"(live: {', '.join(running)}); stop it first, or pass --force",
                file=sys.stderr,
            )
            return 1
        changed = await reset_leases(table, snapshot, args.to)
    print(f"reset {changed} of {len(snapshot.leases)} leases to {args.to}")
    return 0


async def _import_kcl(args: argparse.Namespace, endpoints: AwsEndpoints) -> int:
    target_name = args.lease_table or default_table_name(args.app)
    if target_name == args.table:
        print(
            f"consumer leases: --table {args.table} is the lease table being imported into; "
            "name the KCL application's table",
            file=sys.stderr,
        )
        return 2
    async with (
        LeaseTable.open(endpoints, args.table) as source,
        LeaseTable.open(endpoints, target_name) as target,
    ):
        await _existing_table(source)
        _, activity = await observe_activity(source, args.observe_s)
        if not activity.idle and not args.force:
            # Moving lease counters: a running KCL application. Live heartbeats: a running
            # worker of this service (its leases only move when ownership changes).
            running = (
                f"workers {', '.join(sorted(activity.live_workers))} of this service are live"
                if activity.live_workers
                else f"KCL leases are still being renewed ({len(activity.moving_leases)} moved)"
            )
            print(
                f"consumer leases: {running} in {args.table}; stop that application first, "
                "or pass --force",
                file=sys.stderr,
            )
            return 1
        await target.create_if_missing()
        report = await import_kcl(
            source,
            target,
            stream=args.stream,
            at_timestamp=args.at_timestamp,
            overwrite=args.overwrite,
        )
    kept, others = len(report.skipped_existing), len(report.skipped_other_streams)
    print(
        f"imported {len(report.imported)} leases from {args.table} into {target_name}"
        + (f"; kept {kept} existing" if kept else "")
        + (f"; skipped {others} of other streams" if others else "")
    )
    return 0
