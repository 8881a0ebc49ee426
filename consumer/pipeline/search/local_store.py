"""The embedded local search index: one SQLite file with an FTS5 full-text table.

`documents`: one row per document id with its version, sequence token, states (as in
`consumer.pipeline.newest`), tombstone flag and exact JSON; `documents_text`: FTS5 over the
strings and numbers of live documents (rowid = the document's row). A change applies only over
an older version or by winning the tie; a REMOVE leaves a tombstone row, so a late INSERT
never resurrects the item. One thread per store (sqlite3's rule); each batch commits in WAL
mode with synchronous=FULL (durable across a machine crash); writers sharing a file take turns
(BEGIN IMMEDIATE, up to 30 s) while readers read.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from consumer.pipeline.newest import sequence_token, stored_change, tie_history
from consumer.pipeline.search.document import ITEM_FIELD, DocumentWrite
from consumer.records import JsonNumber, to_json_bytes
from consumer.records.ordering import encode_states

# One transaction: creating a new index costs one sync to disk, not one per statement.
_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    sequence TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT '?',
    prior TEXT NOT NULL DEFAULT '?',
    deleted INTEGER NOT NULL,
    source TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS documents_text
    USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');
COMMIT;
"""

# Indexes written before state digests were kept get the columns (unknown states).
_STATE_COLUMNS = (
    "ALTER TABLE documents ADD COLUMN state TEXT NOT NULL DEFAULT '?'",
    "ALTER TABLE documents ADD COLUMN prior TEXT NOT NULL DEFAULT '?'",
)
_STORED = "SELECT version, sequence, state, prior FROM documents WHERE doc_id = ?"
# Upsert of a write already decided to be newer (in the same transaction); yields the row id.
_UPSERT = """
INSERT INTO documents (doc_id, version, sequence, state, prior, deleted, source)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (doc_id) DO UPDATE SET
    version = excluded.version, sequence = excluded.sequence, state = excluded.state,
    prior = excluded.prior, deleted = excluded.deleted, source = excluded.source
RETURNING id
"""

_SEARCH = """
SELECT d.doc_id, -bm25(documents_text) AS score, d.version, d.source
FROM documents_text JOIN documents AS d ON d.id = documents_text.rowid
WHERE documents_text MATCH ? AND d.deleted = 0
ORDER BY bm25(documents_text) LIMIT ?
"""

# How SQLite words errors in an FTS5 query (as opposed to errors of the database itself).
_QUERY_ERRORS = ("fts5:", "no such column", "unterminated string", "unknown special query")


class IndexMissing(Exception):
    """No local index file at that path (opened read-only)."""


class SearchQueryError(ValueError):
    """A query FTS5 cannot parse, or that names a column the index does not have."""


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A document as stored. `source` is its JSON text (numbers exact)."""

    doc_id: str
    version: int
    deleted: bool
    source: str

    def document(self) -> dict[str, Any]:
        """The JSON document, numbers as Decimal (exact)."""
        return parse_source(self.source)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A search result: higher scores match better (negated BM25)."""

    doc_id: str
    score: float
    version: int
    source: str

    def document(self) -> dict[str, Any]:
        return parse_source(self.source)


def parse_source(source: str) -> dict[str, Any]:
    """A stored JSON document; stdlib json reads non-integers exactly, as Decimal."""
    document: dict[str, Any] = json.loads(source, parse_float=Decimal)
    return document


def _sequence(write: DocumentWrite) -> str:
    try:
        return sequence_token(write.event.position.sequence_key)
    except ValueError:
        return ""  # no numeric sequence number (not from a stream): sorts before any


def _history_if_newer(
    write: DocumentWrite, stored: tuple[int, str, str, str] | None
) -> frozenset[str] | None:
    """The states to store with `write` if it replaces the stored row, else None."""
    if stored is None:
        return write.follows_states
    version, sequence, state, prior = stored
    if write.version != version:
        return write.follows_states if write.version > version else None
    tie = stored_change(state, prior, sequence)
    shard_id = write.event.position.shard_id
    return tie_history(write.transition, write.follows_states, tie, shard_id, "search")


def _texts(value: object) -> Iterator[str]:
    """The searchable words of a JSON view value: strings and numbers, depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, JsonNumber):
        yield value.literal
    elif isinstance(value, dict):
        for member in value.values():
            yield from _texts(member)
    elif isinstance(value, list):
        for member in value:
            yield from _texts(member)


class LocalIndexStore:
    """The SQLite file of one local index. Open with `open`; close with `close`."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection = connection
        self.path = path

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False) -> LocalIndexStore:
        """Open (creating it unless `readonly`) the index at `path`.

        Raises IndexMissing when `readonly` and there is no file, RuntimeError if this
        Python's SQLite has no FTS5.
        """
        if readonly:
            if not path.is_file():
                raise IndexMissing(f"no local index at {path}")
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            return cls(connection, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit, and take the write lock up front
        # (BEGIN IMMEDIATE), so concurrent writers wait for each other instead of failing.
        connection = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")
            connection.executescript(_SCHEMA)
            columns = {row[1] for row in connection.execute("PRAGMA table_info(documents)")}
            if "state" not in columns:
                for statement in _STATE_COLUMNS:
                    try:
                        connection.execute(statement)
                    except sqlite3.OperationalError as error:
                        if "duplicate column" not in str(error):  # another writer added it
                            raise
        except sqlite3.OperationalError as error:
            connection.close()
            if "fts5" in str(error):
                raise RuntimeError(f"this Python's SQLite has no FTS5: {error}") from error
            raise
        return cls(connection, path)

    def apply(self, writes: Sequence[DocumentWrite]) -> list[bool]:
        """Apply `writes` in one transaction; per write, whether it changed the index (False:
        the stored version was newer or the same)."""
        applied: list[bool] = []
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            for write in writes:
                stored = connection.execute(_STORED, (write.doc_id,)).fetchone()
                history = _history_if_newer(write, stored)
                if history is None:
                    applied.append(False)
                    continue
                (row_id,) = connection.execute(
                    _UPSERT,
                    (
                        write.doc_id,
                        write.version,
                        _sequence(write),
                        write.transition.after,
                        encode_states(history),
                        int(write.deleted),
                        to_json_bytes(write.source).decode("utf-8"),
                    ),
                ).fetchone()
                connection.execute("DELETE FROM documents_text WHERE rowid = ?", (row_id,))
                if not write.deleted:
                    connection.execute(
                        "INSERT INTO documents_text (rowid, text) VALUES (?, ?)",
                        (row_id, " ".join(_texts(write.source.get(ITEM_FIELD)))),
                    )
                applied.append(True)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return applied

    def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        """Live documents matching the FTS5 `query`, best first.

        Raises SearchQueryError for a query FTS5 rejects.
        """
        try:
            rows = self._connection.execute(_SEARCH, (query, limit)).fetchall()
        except sqlite3.OperationalError as error:
            message = str(error)
            if message.startswith(_QUERY_ERRORS):
                raise SearchQueryError(message) from error
            raise
        return [SearchHit(*row) for row in rows]

    def get(self, doc_id: str) -> StoredDocument | None:
        """The live document with this id (None for a tombstone)."""
        row = self._connection.execute(
            "SELECT doc_id, version, source FROM documents WHERE doc_id = ? AND deleted = 0",
            (doc_id,),
        ).fetchone()
        return None if row is None else StoredDocument(row[0], row[1], False, row[2])

    def documents(self, *, include_deleted: bool = False) -> list[StoredDocument]:
        """Every (live) document, by id."""
        where = "" if include_deleted else "WHERE deleted = 0"
        rows = self._connection.execute(
            f"SELECT doc_id, version, deleted, source FROM documents {where} ORDER BY doc_id"
        ).fetchall()
        return [StoredDocument(a, b, bool(c), d) for a, b, c, d in rows]

    def count(self) -> int:
        """The number of live documents."""
        (count,) = self._connection.execute(
            "SELECT count(*) FROM documents WHERE deleted = 0"
        ).fetchone()
        return int(count)

    def close(self) -> None:
        self._connection.close()
