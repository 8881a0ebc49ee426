"""The local search index (SQLite, `consumer.pipeline.search.local_store`) as verify sees it.

Opened read-only on verify's own connection, so a running worker keeps writing meanwhile
(WAL: readers never block the writer). All SQLite calls run on one thread (sqlite3's rule).
Reads the store's `documents` table: `doc_id`, `deleted`, `source` (the JSON document)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from consumer.pipeline.search.document import KEYS_FIELD
from consumer.pipeline.search.local_store import parse_source
from consumer.verify.keys import KeyRef
from consumer.verify.model import VerifyError
from consumer.verify.sides import IndexSide

_T = TypeVar("_T")
PAGE = 500
_CHUNK = 500  # ids per IN (...) query: under SQLite's parameter limit


def _page_after(connection: sqlite3.Connection, *, after: str) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = connection.execute(
        "SELECT doc_id, source FROM documents WHERE deleted = 0 AND doc_id > ? "
        "ORDER BY doc_id LIMIT ?",
        (after, PAGE),
    ).fetchall()
    return rows


class LocalIndexSide(IndexSide):
    def __init__(
        self, path: Path, key_names: tuple[str, ...], key_types: Mapping[str, str]
    ) -> None:
        super().__init__(key_names, key_types)
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    async def _run(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-index")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._on_connection, operation
        )

    def _on_connection(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._connection is None:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._connection = sqlite3.connect(uri, uri=True, timeout=30.0)
        return operation(self._connection)

    async def check(self) -> None:
        if not self.path.is_file():
            raise VerifyError(
                f"search index {self.path} does not exist (pipelines.search.local_path and "
                "index): has the search pipeline run yet?"
            )
        try:
            await self._run(lambda c: c.execute("SELECT count(*) FROM documents").fetchone())
        except sqlite3.Error as error:
            raise VerifyError(f"search index {self.path} cannot be read: {error}") from None

    async def fetch(self, refs: Sequence[KeyRef]) -> dict[str, Any]:
        ids = list({ref.doc_id for ref in refs})

        def read(connection: sqlite3.Connection) -> dict[str, Any]:
            found: dict[str, Any] = {}
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(
                    f"SELECT doc_id, source FROM documents "
                    f"WHERE deleted = 0 AND doc_id IN ({marks})",
                    chunk,
                ).fetchall()
                for doc_id, source in rows:
                    found[doc_id] = parse_source(source)
            return found

        return await self._run(read)

    async def live_keys(self) -> AsyncIterator[list[KeyRef]]:
        after = ""
        while True:
            rows = await self._run(partial(_page_after, after=after))
            if not rows:
                return
            yield self._refs(parse_source(source).get(KEYS_FIELD) or {} for _, source in rows)
            after = rows[-1][0]

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def close() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await asyncio.get_running_loop().run_in_executor(executor, close)
        executor.shutdown(wait=True)
