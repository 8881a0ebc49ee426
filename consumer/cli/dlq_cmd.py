"""`consumer dlq list|replay`: inspect and re-drive records parked in the dead-letter queue."""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from consumer.cli.options import add_config_option, settings_or_exit
from consumer.telemetry.logs import quiet_logging


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser("dlq", help="inspect or re-drive the dead-letter queue")
    actions = parser.add_subparsers(dest="dlq_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="show parked records (they stay parked)")
    listing.add_argument("--max", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    replay = actions.add_parser(
        "replay", help="re-drive parked records; each is removed once applied"
    )
    replay.add_argument("--max", type=int, default=1000, help="at most this many (default 1000)")
    replay.add_argument(
        "--pipeline", default=None, help="only records parked by this pipeline (or 'decode')"
    )
    for action in (listing, replay):
        add_config_option(action)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from consumer.service.dlq_admin import list_parked, replay_parked

    settings = settings_or_exit(args)
    if settings is None:
        return 2
    if args.max < 1:
        print("consumer dlq: --max must be at least 1", file=sys.stderr)
        return 2
    quiet_logging()
    try:
        if args.dlq_action == "list":
            messages = asyncio.run(list_parked(settings, args.max))
            for message in messages:
                record = message.record
                if args.json:
                    row = {
                        "pipeline": record.pipeline,
                        "shard_id": record.shard_id,
                        "sequence_number": record.sequence_number,
                        "sub_sequence_number": record.sub_sequence_number,
                        "event_id": record.event_id,
                        "error_type": record.error_type,
                        "error": record.error,
                        "attempts": record.attempts,
                        "parked_at": record.parked_at,
                        "receive_count": message.receive_count,
                        "size": len(record.raw),
                    }
                    print(orjson.dumps(row).decode())
                else:
                    print(
                        f"{record.parked_at}  {record.pipeline:<12} {record.shard_id}"
                        f"@{record.sequence_number}.{record.sub_sequence_number}  "
                        f"{record.error_type}: {record.error[:120]}"
                    )
            print(f"{len(messages)} parked record(s) shown", file=sys.stderr)
            return 0
        report = asyncio.run(replay_parked(settings, args.max, args.pipeline))
    except ValueError as error:
        print(f"consumer dlq: {error}", file=sys.stderr)
        return 2
    for line in report.errors:
        print(f"still parked: {line}", file=sys.stderr)
    print(
        f"dlq replay: applied={report.applied} failed={report.failed} skipped={report.skipped}"
    )
    return 1 if report.failed else 0
