"""`consumer search QUERY`: query the embedded local search index.

QUERY is an SQLite FTS5 query over the items' string and number values: words (all must
match), "a phrase", prefix*, OR, NOT, parentheses. Deleted items are never found.

Output: one line per hit, best first: the document id (the item key), the score (higher is
better) and a short summary of the item; with --json, one JSON object per line with `id`,
`score`, `version` and `document` (numbers exact). Exit status: 0 (also when nothing matched),
2 if the index is missing or the query is malformed.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from contextlib import closing
from decimal import Decimal
from typing import TextIO

import orjson

from consumer.cli.options import command_parser, whole_number
from consumer.cli.terminal import json_safe, printable
from consumer.pipeline.search.document import ITEM_FIELD, KEYS_FIELD
from consumer.pipeline.search.local_store import (
    IndexMissing,
    LocalIndexStore,
    SearchHit,
    SearchQueryError,
)
from consumer.pipeline.search.settings import DEFAULT_INDEX, local_index_file

SUMMARY_WIDTH = 100
QUERY_SYNTAX = (
    'query syntax: words (all must match), "a phrase", prefix*, a OR b, a NOT b, (groups); '
    'put words with punctuation in double quotes ("user@example.com")'
)
_VALUE_WIDTH = 40
MAX_LIMIT = 10_000


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command_parser(
        subcommands, "search", "search the local search index (the default search sink)", __doc__
    )
    parser.add_argument(
        "query",
        metavar="QUERY",
        help='an SQLite FTS5 query: words, "a phrase", prefix*, OR, NOT, (groups)',
    )
    parser.add_argument(
        "--index",
        default=DEFAULT_INDEX,
        metavar="PATH_OR_NAME",
        help=f"index name under .local-search/, or a file path (default: {DEFAULT_INDEX})",
    )
    parser.add_argument(
        "--limit",
        type=whole_number(
            1, MAX_LIMIT, "not a number: {text!r}", "must be between 1 and {high}, got {text}"
        ),
        default=10,
        metavar="N",
        help="at most N hits (10)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return search(args.query, args.index, args.limit, args.json, sys.stdout, sys.stderr)


def search(query: str, index: str, limit: int, as_json: bool, out: TextIO, err: TextIO) -> int:
    """Run one search and print the hits; return the exit status."""
    try:
        path = local_index_file(index)
    except ValueError as error:  # an index name the local index does not allow
        print(f"consumer search: --index: {printable(str(error))}", file=err)
        return 2
    shown = printable(str(path))
    try:
        store = LocalIndexStore.open(path, readonly=True)
    except IndexMissing:
        print(
            f"consumer search: no local index at {shown} (run the consumer with the search "
            "pipeline first, or pass --index)",
            file=err,
        )
        return 2
    with closing(store):
        try:
            hits = store.search(query, limit)
        except SearchQueryError as error:
            print(
                f"consumer search: bad query {printable(repr(query))}: {error}; {QUERY_SYNTAX}",
                file=err,
            )
            return 2
        except sqlite3.DatabaseError as error:  # not SQLite, or SQLite but not an index
            print(f"consumer search: {shown} is not a search index ({error})", file=err)
            return 2
    for hit in hits:
        out.write(_json_line(hit) if as_json else _text_line(hit))
        out.write("\n")
    out.flush()
    return 0


def _json_line(hit: SearchHit) -> str:
    # The stored document goes out verbatim, so its numbers keep their exact digits.
    line = {
        "id": hit.doc_id,
        "score": round(hit.score, 6),
        "version": hit.version,
        "document": orjson.Fragment(hit.source),
    }
    return json_safe(orjson.dumps(line).decode("utf-8"))


def _text_line(hit: SearchHit) -> str:
    # Item strings may hold terminal control sequences: shown escaped, never interpreted.
    return f"{printable(hit.doc_id)}\t{hit.score:.3f}\t{printable(summary(hit))}"


def summary(hit: SearchHit) -> str:
    """`name=value` pairs of the item's non-key attributes, clipped to SUMMARY_WIDTH."""
    document = hit.document()
    item = document.get(ITEM_FIELD) or {}
    keys = document.get(KEYS_FIELD) or {}
    pairs = [f"{name}={_short(value)}" for name, value in item.items() if name not in keys]
    return _clip(" ".join(pairs), SUMMARY_WIDTH)


def _short(value: object) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | Decimal) and not isinstance(value, bool):
        text = str(value)
    else:  # true, false, null, lists and maps as JSON
        text = orjson.dumps(value, default=str).decode()
    return _clip(" ".join(text.split()), _VALUE_WIDTH)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
