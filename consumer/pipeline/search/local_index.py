"""The "search" sink when no OpenSearch endpoint is configured: the embedded local index.

Same documents, ids and convergence as the OpenSearch sink (`document.py`, `local_store.py`).
SQLite calls run on one dedicated thread, which owns the connection (opened on first use), so
the event loop never waits on disk. Run one LocalSearchIndex per index file per process.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from consumer.pipeline.search.document import plan_writes
from consumer.pipeline.search.local_store import LocalIndexStore, SearchHit, StoredDocument
from consumer.pipeline.search.settings import LocalIndexSettings
from consumer.pipeline.sink import Failures, SinkError
from consumer.records import ChangeEvent

_T = TypeVar("_T")


class LocalSearchIndex:
    """The local index as a Sink, plus its queries (`search`, `get`, `count`, `documents`).

    Not buffered: `write` returns after the batch is committed to the file.
    """

    name = "search"
    buffered = False
    collapses_per_key = True  # writes only the newest change per document of a batch

    def __init__(self, settings: LocalIndexSettings | None = None) -> None:
        self.settings = settings if settings is not None else LocalIndexSettings()
        self._executor: ThreadPoolExecutor | None = None
        self._store: LocalIndexStore | None = None  # used only on the executor's thread

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        plan = plan_writes(events)
        if plan.writes:
            try:
                await self._run(lambda store: store.apply(plan.writes))
            except sqlite3.Error as error:
                raise SinkError(f"local search index: {error}", retryable=True) from error
        return plan.failures

    async def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        """Live documents matching the FTS5 `query`, best first (SearchQueryError if the
        query is malformed)."""
        return await self._run(lambda store: store.search(query, limit))

    async def get(self, doc_id: str) -> StoredDocument | None:
        """The live document with this id, None if there is none or it was deleted."""
        return await self._run(lambda store: store.get(doc_id))

    async def documents(self) -> list[StoredDocument]:
        """Every live document, by id."""
        return await self._run(lambda store: store.documents())

    async def count(self) -> int:
        """The number of live documents."""
        return await self._run(lambda store: store.count())

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        await asyncio.get_running_loop().run_in_executor(executor, self._close_store)
        executor.shutdown(wait=True)

    async def _run(self, operation: Callable[[LocalIndexStore], _T]) -> _T:
        if self._executor is None:
            # One worker thread: every SQLite call, and the connection, stay on it.
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-search")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._on_store, operation
        )

    def _on_store(self, operation: Callable[[LocalIndexStore], _T]) -> _T:
        if self._store is None:
            self._store = LocalIndexStore.open(self.settings.file)
        return operation(self._store)

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()
