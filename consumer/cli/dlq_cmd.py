"""`consumer dlq list|replay`: inspect and re-drive records parked in the dead-letter queue."""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from consumer.aws.errors import call_failed
from consumer.cli.options import NOT_WHOLE, add_config_option, whole_number
from consumer.cli.terminal import printable
from consumer.pipeline.dlq import DlqMessage
from consumer.settings import PIPELINE_NAMES, Settings, load_settings
from consumer.telemetry.logs import quiet_logging

# Who parks records: a sink pipeline, or "decode" for records that could not be decoded.
PARKING_PIPELINES = (*PIPELINE_NAMES, "decode")
MAX_MESSAGES = 100_000
_message_count = whole_number(1, MAX_MESSAGES, NOT_WHOLE, "must be 1-{high}, got {text}")
# `dlq list --json`: these fields of each parked record, then its receive count and size.
_JSON_FIELDS = (
    "pipeline", "shard_id", "sequence_number", "sub_sequence_number", "event_id", "error_type",
    "error", "attempts", "parked_at",
)


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser("dlq", help="inspect or re-drive the dead-letter queue")
    actions = parser.add_subparsers(dest="dlq_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="show parked records (they stay parked)")
    listing.add_argument(
        "--max", type=_message_count, default=100, help="at most this many (default 100)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    replay = actions.add_parser(
        "replay", help="re-drive parked records; each is removed once applied"
    )
    replay.add_argument(
        "--max", type=_message_count, default=1000, help="at most this many (default 1000)"
    )
    replay.add_argument(
        "--pipeline",
        choices=PARKING_PIPELINES,
        help="only records parked by this pipeline (or 'decode')",
    )
    for action in (listing, replay):
        add_config_option(action)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    pipeline = getattr(args, "pipeline", None)
    if pipeline not in (None, "decode") and pipeline not in settings.enabled_pipelines():
        print(
            f"consumer dlq: --pipeline {pipeline}: that pipeline is not enabled in the settings "
            f"(enabled: {', '.join(settings.enabled_pipelines()) or 'none'})",
            file=sys.stderr,
        )
        return 2
    quiet_logging()
    try:
        return _run(args, settings)
    except ValueError as error:
        print(f"consumer dlq: {error}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as error:
        print(f"consumer dlq: {_aws_problem(error, settings)}", file=sys.stderr)
        return 1


def _aws_problem(error: ClientError | BotoCoreError, settings: Settings) -> str:
    queue = settings.dlq.queue_url
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach the queue's endpoint ({error})"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return f"queue {queue} does not exist (dlq.queue_url)"
        return call_failed(error)
    return f"AWS call failed: {error}"


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.dlq_action == "list":
        # Only the queue: listing never builds pipelines nor imports the transform hook.
        from consumer.service.dlq_admin import list_parked

        messages = asyncio.run(list_parked(settings, args.max))
        _print_parked(messages, args.json)
        return 0
    from consumer.service.dlq_admin import replay_parked

    report = asyncio.run(replay_parked(settings, args.max, args.pipeline))
    # Positions and error types only (the errors' text may quote records): `dlq list` shows
    # each parked record's error from its message.
    for line in report.errors:
        print(f"still parked: {line}", file=sys.stderr)
    if report.errors:
        print("`consumer dlq list` shows their errors", file=sys.stderr)
    print(
        f"dlq replay: applied={report.applied} failed={report.failed} skipped={report.skipped}"
    )
    return 1 if report.failed else 0


def _print_parked(messages: list[DlqMessage], as_json: bool) -> None:
    for message in messages:
        record = message.record
        if as_json:
            row = {name: getattr(record, name) for name in _JSON_FIELDS}
            row |= {"receive_count": message.receive_count, "size": len(record.raw)}
            print(orjson.dumps(row).decode())
        else:
            # The error text may quote record contents: no terminal control characters.
            print(
                f"{record.parked_at}  {record.pipeline:<12} {record.shard_id}"
                f"@{record.sequence_number}.{record.sub_sequence_number}  "
                f"{printable(record.error_type)}: {printable(record.error[:120])}"
            )
    print(f"{len(messages)} parked record(s) shown", file=sys.stderr)
