"""The embedded local search index (SQLite FTS5): the search sink when no endpoint is set."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from consumer.pipeline.search.local_index import LocalSearchIndex
from consumer.pipeline.search.local_store import LocalIndexStore, SearchQueryError
from consumer.pipeline.search.settings import LocalIndexSettings
from consumer.pipeline.sink import Sink, flushing
from tests.change_factory import change, insert, remove, upsert
from tests.unit.test_search_strategies import Delivery, deliveries, expected_items


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[LocalSearchIndex]:
    sink = LocalSearchIndex(LocalIndexSettings(index="orders", directory=tmp_path))
    try:
        yield sink
    finally:
        await sink.aclose()


async def live_values(index: LocalSearchIndex) -> dict[str, int]:
    return {doc.doc_id: doc.document()["item"]["value"] for doc in await index.documents()}


def test_this_python_has_fts5() -> None:
    sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")


def test_it_is_an_unbuffered_search_sink(tmp_path: Path) -> None:
    sink: Sink = LocalSearchIndex(LocalIndexSettings(directory=tmp_path))
    assert (sink.name, sink.buffered, flushing(sink)) == ("search", False, None)
    assert list(tmp_path.iterdir()) == []  # nothing opened before the first write


async def test_the_newest_change_wins_whatever_the_order(index: LocalSearchIndex) -> None:
    assert await index.write([upsert("a", 3_000, 3), insert("a", 1_000, 1)]) == {}
    assert await index.write([upsert("a", 2_000, 2)]) == {}
    assert await live_values(index) == {"a": 3}
    document = await index.get("a")
    assert document is not None and document.version == 3_000


async def test_a_late_insert_never_resurrects_a_deleted_item(index: LocalSearchIndex) -> None:
    assert await index.write([insert("k", 1_000, 1), remove("k", 3_000)]) == {}
    assert await index.write([insert("k", 1_000, 1), upsert("k", 2_000, 2)]) == {}
    assert await index.get("k") is None
    assert await index.count() == 0
    assert await index.search("k") == []
    # A change newer than the delete brings the item back.
    assert await index.write([insert("k", 4_000, 4)]) == {}
    assert await live_values(index) == {"k": 4}


async def test_equal_versions_break_ties_by_sequence_number(index: LocalSearchIndex) -> None:
    later = upsert("t", 5_000, 2, sequence=200)
    earlier = upsert("t", 5_000, 1, sequence=100)
    assert await index.write([later]) == {}
    assert await index.write([earlier]) == {}  # delivered late: loses the tie
    assert await live_values(index) == {"t": 2}


async def test_search_finds_live_items_by_their_values(index: LocalSearchIndex) -> None:
    await index.write(
        [
            change("INSERT", "o1", 1_000, new={"status": {"S": "shipped"}, "city": {"S": "Oslo"}}),
            change("INSERT", "o2", 1_000, new={"status": {"S": "pending"}, "city": {"S": "Oslo"}}),
            change("INSERT", "o3", 1_000, new={"status": {"S": "shipped"}, "n": {"N": "42.50"}}),
        ]
    )
    hits = await index.search("shipped", limit=10)
    assert sorted(hit.doc_id for hit in hits) == ["o1", "o3"]
    assert all(hit.score > 0 for hit in hits)
    assert [hit.doc_id for hit in await index.search("shipped AND oslo")] == ["o1"]
    assert [hit.doc_id for hit in await index.search('"42.50"')] == ["o3"]
    assert len(await index.search("oslo", limit=1)) == 1
    await index.write([remove("o1", 2_000)])
    assert [hit.doc_id for hit in await index.search("oslo")] == ["o2"]
    assert await index.count() == 2


async def test_documents_keep_exact_numbers(index: LocalSearchIndex) -> None:
    big = "12345678901234567890123456789012345678"
    await index.write([change("INSERT", "n", 1_000, new={"n": {"N": big}, "f": {"N": "0.10"}})])
    document = await index.get("n")
    assert document is not None
    assert f'"n":{big}' in document.source and '"f":0.10' in document.source
    assert str(document.document()["item"]["f"]) == "0.10"


async def test_a_malformed_query_is_a_search_query_error(index: LocalSearchIndex) -> None:
    await index.write([insert("a", 1_000, 1)])
    with pytest.raises(SearchQueryError):
        await index.search('"unbalanced')
    with pytest.raises(SearchQueryError):
        await index.search("nosuchcolumn:x")


async def test_bad_changes_are_reported_and_the_rest_applied(index: LocalSearchIndex) -> None:
    no_image = change("MODIFY", "a", 1_000)
    failures = await index.write([no_image, insert("b", 1_000, 1)])
    assert list(failures) == [0] and not failures[0].retryable
    assert await live_values(index) == {"b": 1}


async def test_the_index_survives_a_restart(tmp_path: Path) -> None:
    settings_ = LocalIndexSettings(index="orders", directory=tmp_path)
    first = LocalSearchIndex(settings_)
    await first.write([insert("a", 1_000, 1), remove("b", 2_000)])
    await first.aclose()
    second = LocalSearchIndex(settings_)
    try:
        await second.write([insert("b", 1_000, 1)])  # older than the stored tombstone
        assert await live_values(second) == {"a": 1}
    finally:
        await second.aclose()
    store = LocalIndexStore.open(tmp_path / "orders.sqlite3", readonly=True)
    try:
        assert [doc.doc_id for doc in store.documents(include_deleted=True)] == ["a", "b"]
        assert store.count() == 1
    finally:
        store.close()


async def test_several_writers_on_one_file_converge(tmp_path: Path) -> None:
    # The service may build one sink per shard: each has its own connection to the file.
    settings_ = LocalIndexSettings(index="orders", directory=tmp_path)
    writers = [LocalSearchIndex(settings_) for _ in range(3)]
    try:
        batches = [
            [upsert(f"k{key}", 1_000 * step, step) for key in range(5)] for step in range(1, 10)
        ]
        results = await asyncio.gather(
            *(writers[i % 3].write(batch) for i, batch in enumerate(reversed(batches)))
        )
        assert all(result == {} for result in results)
        assert await live_values(writers[0]) == {f"k{key}": 9 for key in range(5)}
    finally:
        for writer in writers:
            await writer.aclose()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_duplicates_and_disorder_converge_to_the_table(delivery: Delivery) -> None:
    async def deliver(directory: Path) -> dict[str, object]:
        index = LocalSearchIndex(LocalIndexSettings(directory=directory))
        try:
            for batch in delivery.batches:
                assert await index.write(batch) == {}
            documents = await index.documents()
            assert await index.count() == len(documents)
            return {doc.doc_id: doc.document()["item"] for doc in documents}
        finally:
            await index.aclose()

    with tempfile.TemporaryDirectory() as directory:
        assert asyncio.run(deliver(Path(directory))) == expected_items(delivery.changes)
