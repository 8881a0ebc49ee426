"""`consumer decode [FILE|-]`: decode change records, one JSON line per change.

Input: one record per line, in any of these shapes (--format, default auto: told apart by
their keys):
  destination  a Kinesis destination record's Data (the JSON DynamoDB writes to Kinesis)
  streams      a DynamoDB Streams GetRecords record (--table names its table)
  lambda       a Lambda DynamoDB event {"Records": [...]}, or one of its records
  kinesis      a Kinesis record with base64 Data (GetRecords, or a Lambda Kinesis event
               record), KPL aggregates de-aggregated; or {"Records": [...]} of them
A UTF-8 byte order mark before the first line is ignored; a line longer than
--max-line-bytes is skipped with an error (without reading it into memory).

Output: per change, one JSON line with `event_id, event_name, table, keys, new_image,
old_image, created_at, ttl_delete`; numbers are JSON numbers with exactly the digits DynamoDB
sent, binary values base64, absent images null, created_at ISO 8601 UTC with microseconds.
A bad line prints `line N: reason` on stderr and the rest go on; the exit status is 1 if any
line failed, 2 if the input cannot be read, else 0.
"""

from __future__ import annotations

import argparse
import codecs
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from consumer.cli.decode_formats import FORMATS, UNKNOWN_TABLE, decode_line
from consumer.cli.options import NOT_WHOLE, command_parser, whole_number
from consumer.cli.terminal import printable
from consumer.records import (
    DecodeError,
    RecordPosition,
    change_document,
    to_json_bytes,
)

STDIN = "-"
# A Kinesis record is at most 10 MiB (with UpdateMaxRecordSize); as base64 inside a JSON
# record that is about 13.4 MiB. Longer lines are refused without being held in memory.
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class LineTooLong:
    """Stands in for a line longer than the limit (its bytes were skipped, not kept)."""

    length: int


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command_parser(
        subcommands,
        "decode",
        "decode DynamoDB change records (Kinesis, Streams, Lambda; one per line) to JSON",
        __doc__,
    )
    parser.add_argument(
        "file",
        nargs="?",
        default=STDIN,
        metavar="FILE",
        help="file of records, one per line; '-' (the default) reads stdin",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="the records' shape (default auto: detected per line)",
    )
    parser.add_argument(
        "--table",
        default=UNKNOWN_TABLE,
        help="table name for streams records, which do not carry it (default '-')",
    )
    parser.add_argument(
        "--max-line-bytes",
        type=whole_number(1024, 1024**3, NOT_WHOLE, "must be {low} to {high} bytes, got {text}"),
        default=DEFAULT_MAX_LINE_BYTES,
        metavar="N",
        help=f"skip longer lines with an error (default {DEFAULT_MAX_LINE_BYTES})",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    name: str = args.file
    try:
        with nullcontext(sys.stdin.buffer) if name == STDIN else open(name, "rb") as handle:
            lines = bounded_lines(handle, args.max_line_bytes)
            source = "<stdin>" if name == STDIN else name
            return decode_lines(lines, source, sys.stdout, sys.stderr, args.format, args.table)
    except OutputFailed as failed:
        error = failed.__cause__
        if isinstance(error, BrokenPipeError):  # `consumer decode | head`: the reader is done
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        reason = error.strerror if isinstance(error, OSError) else None
        print(f"consumer decode: cannot write the output: {reason or error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"consumer decode: cannot read {name}: {error.strerror or error}", file=sys.stderr)
        return 2


def bounded_lines(handle: BinaryIO, limit: int) -> Iterator[bytes | LineTooLong]:
    """The lines of `handle`; a line longer than `limit` bytes comes as LineTooLong and is
    read past in chunks, so memory stays bounded by `limit` whatever the input."""
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or (line.endswith(b"\n") and len(line) == limit + 1):
            yield line
            continue
        length = len(line)
        while not line.endswith(b"\n"):
            line = handle.readline(_CHUNK)
            if not line:
                break
            length += len(line)
        yield LineTooLong(length)


def decode_lines(
    lines: Iterable[bytes | LineTooLong],
    source: str,
    out: TextIO,
    err: TextIO,
    record_format: str = "auto",
    table: str = UNKNOWN_TABLE,
) -> int:
    """Decode each non-blank line of `lines`; return the exit status (1 if any failed)."""
    failed = False
    for number, line in enumerate(lines, start=1):
        for problem in _decode(number, line, source, out, record_format, table):
            failed = True
            print(f"line {number}: {problem}", file=err)
    try:
        out.flush()
    except OSError as error:
        raise OutputFailed(error) from error
    return 1 if failed else 0


class OutputFailed(Exception):
    """Writing the output failed (a full disk, a closed pipe): not the input's fault."""


def _decode(
    number: int, line: bytes | LineTooLong, source: str, out: TextIO, record_format: str, table: str
) -> Iterator[str]:
    """Writes the changes of line `number` to `out`; yields the problem of each that failed."""
    if isinstance(line, LineTooLong):
        yield f"{line.length} bytes, over --max-line-bytes; skipped"
        return
    # RFC 8259 lets a parser ignore a leading UTF-8 byte order mark.
    payload = (line.removeprefix(codecs.BOM_UTF8) if number == 1 else line).strip()
    if not payload:
        return
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as error:
        yield f"not UTF-8 text (byte {error.start + 1} of the line is invalid)"
        return
    position = RecordPosition(stream=source, shard_id="", sequence_number=str(number))
    try:
        results = decode_line(payload, position, record_format, table)
    except RecursionError:
        results = [DecodeError(position, "nested too deeply to decode")]
    except Exception as error:  # a decoder bug must not end the run: say which line
        results = [DecodeError(position, f"cannot be decoded ({type(error).__name__})")]
    for result in results:
        try:
            if isinstance(result, DecodeError):
                raise result
            document = change_document(result)
        except DecodeError as error:
            yield printable(error.reason)
            continue
        except Exception as error:  # a decoder bug must not end the run: say which line
            yield f"cannot be decoded ({type(error).__name__})"
            continue
        try:
            text = to_json_bytes(document).decode("utf-8")
        except Exception as error:  # e.g. orjson's nesting limit (254 levels)
            yield f"cannot be written as JSON ({printable(str(error))})"
            continue
        try:
            out.write(text)
            out.write("\n")
        except OSError as error:
            raise OutputFailed(error) from error
