"""`consumer decode [FILE|-]`: decode change records, one JSON line per change.

Input: one record payload per line, the Kinesis record's Data as JSON text (a Kinesis
destination record). Output: per record, one JSON line with `event_id, event_name, table,
keys, new_image, old_image, created_at, ttl_delete`; numbers are JSON numbers with exactly
the digits DynamoDB sent, binary values base64, absent images null, created_at ISO 8601 UTC
with microseconds. A bad line prints `line N: reason` on stderr and the rest go on; the exit
status is 1 if any line failed, 2 if the input cannot be read, else 0.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import TextIO

from consumer.records import (
    DecodeError,
    RecordPosition,
    change_document,
    decode_destination_record,
    to_json_bytes,
)

STDIN = "-"


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "decode",
        help="decode DynamoDB change records (one JSON payload per line) to JSON lines",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file",
        nargs="?",
        default=STDIN,
        metavar="FILE",
        help="file of record payloads, one per line; '-' (the default) reads stdin",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    name: str = args.file
    if name == STDIN:
        return decode_lines(sys.stdin.buffer, "<stdin>", sys.stdout, sys.stderr)
    try:
        with open(name, "rb") as lines:
            return decode_lines(lines, name, sys.stdout, sys.stderr)
    except OSError as error:
        print(f"consumer decode: cannot read {name}: {error.strerror or error}", file=sys.stderr)
        return 2


def decode_lines(lines: Iterable[bytes], source: str, out: TextIO, err: TextIO) -> int:
    """Decode each non-blank line of `lines`; return the exit status (1 if any failed)."""
    failed = False
    for number, line in enumerate(lines, start=1):
        payload = line.strip()
        if not payload:
            continue
        position = RecordPosition(stream=source, shard_id="", sequence_number=str(number))
        try:
            event = decode_destination_record(payload, position)
            document = to_json_bytes(change_document(event))
        except DecodeError as error:
            failed = True
            print(f"line {number}: {error.reason}", file=err)
            continue
        out.write(document.decode("utf-8"))
        out.write("\n")
    out.flush()
    return 1 if failed else 0
