"""Ties in ApproximateCreationDateTime across batches (issue 14.4), for replication (moto), the
local search index and OpenSearch (the double, which applies external versions as OpenSearch
does: "external" refuses an equal version with 409, "external_gte" accepts it): the stored
version keeps enough (the state written and the states it follows) that a late copy of an
older change of the same millisecond never wins.

AWS: the destination's precision defaults to MILLISECOND, and its records may be duplicated
and out of order (Kinesis Data Streams for DynamoDB, "Change data capture for Kinesis Data
Streams with DynamoDB"): a redelivered copy has a higher sequence number than the change
that superseded it, so (time, sequence number) lets the copy win.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import orjson
import pytest
import pytest_asyncio

from consumer.aws import AwsEndpoints
from consumer.pipeline.replication import (
    ReplicationSection,
    ReplicationSink,
    create_replica_table,
)
from consumer.pipeline.search.local_index import LocalSearchIndex
from consumer.pipeline.search.opensearch_sink import OpenSearchSink
from consumer.pipeline.search.settings import LocalIndexSettings, OpenSearchSettings
from consumer.pipeline.sink import Sink
from consumer.records import ChangeEvent
from consumer.records.ordering import AMBIGUOUS_TIES
from tests.change_factory import change
from tests.opensearch_double import OpenSearchDouble
from tests.replica_table import live_items

pytestmark = pytest.mark.integration

MS = 1_700_000_000_123


def step(name: str, before: int | None, after: int | None, sequence: int) -> ChangeEvent:
    new = {"qty": {"N": str(after)}} if after is not None else None
    old = {"qty": {"N": str(before)}} if before is not None else None
    return change(name, "k", MS, new=new, old=old, sequence=sequence, precision="MILLISECOND")


# What each sink holds for "k": its qty, or None when absent or deleted.
Reader = Callable[[], Awaitable[str | None]]


@pytest_asyncio.fixture(params=["replication", "local-index", "opensearch"])
async def sink(
    request: pytest.FixtureRequest, endpoints: AwsEndpoints, unique_name: str, tmp_path: Path
) -> AsyncIterator[tuple[Sink, Reader]]:
    if request.param == "replication":
        async with endpoints.aio_client("dynamodb") as client:
            await create_replica_table(
                client,
                unique_name,
                [{"AttributeName": "pk", "KeyType": "HASH"}],
                [{"AttributeName": "pk", "AttributeType": "S"}],
            )

            async def replica_qty() -> str | None:
                items = await live_items(client, unique_name)
                return str(items[0]["qty"]["N"]) if items else None

            yield ReplicationSink(client, ReplicationSection(table=unique_name)), replica_qty
        return
    if request.param == "opensearch":
        with OpenSearchDouble() as double:
            sink = OpenSearchSink(OpenSearchSettings(endpoint=double.url, auth="none"))

            async def document_qty() -> str | None:
                docs = double.engine.indices["changes"].docs
                sources = [
                    orjson.loads(double.source("changes", doc_id) or b"{}") for doc_id in docs
                ]
                live = [source for source in sources if not source["deleted"]]
                return str(live[0]["item"]["qty"]) if live else None

            try:
                yield sink, document_qty
            finally:
                await sink.aclose()
        return
    index = LocalSearchIndex(LocalIndexSettings(directory=tmp_path))

    async def index_qty() -> str | None:
        documents = await index.documents()
        return str(documents[0].document()["item"]["qty"]) if documents else None

    try:
        yield index, index_qty
    finally:
        await index.aclose()


async def deliver(target: Sink, batches: Sequence[Sequence[ChangeEvent]]) -> None:
    for batch in batches:
        assert await target.write(batch) == {}


async def test_late_copies_of_older_changes_of_a_millisecond_lose_across_batches(
    sink: tuple[Sink, Reader],
) -> None:
    """INSERT 1, MODIFY 1->2, MODIFY 2->3 in one millisecond, one batch each, then copies of
    the first two (higher sequence numbers), one batch each."""
    target, read = sink
    a, b, c = step("INSERT", None, 1, 10), step("MODIFY", 1, 2, 11), step("MODIFY", 2, 3, 12)
    late = [step("INSERT", None, 1, 13), step("MODIFY", 1, 2, 14)]
    await deliver(target, [[a], [b], [c], *([copy] for copy in late)])
    assert await read() == "3"


async def test_a_chain_written_in_one_batch_keeps_its_history_for_later_copies(
    sink: tuple[Sink, Reader],
) -> None:
    target, read = sink
    a, b, c = step("INSERT", None, 1, 10), step("MODIFY", 1, 2, 11), step("MODIFY", 2, 3, 12)
    await deliver(target, [[a, b, c], [step("INSERT", None, 1, 13)], [step("MODIFY", 1, 2, 14)]])
    assert await read() == "3"


async def test_a_followed_tie_after_a_stored_chain_still_wins(sink: tuple[Sink, Reader]) -> None:
    target, read = sink
    a, b = step("INSERT", None, 1, 10), step("MODIFY", 1, 2, 11)
    c, d = step("MODIFY", 2, 3, 12), step("MODIFY", 3, 4, 13)
    await deliver(target, [[a, b], [c], [step("INSERT", None, 1, 14)], [d]])
    assert await read() == "4"


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
async def test_two_changes_and_a_copy_converge_in_every_order(
    sink: tuple[Sink, Reader], order: tuple[int, ...]
) -> None:
    """MODIFY 1->2 (0), MODIFY 2->3 (1) and a copy of the first (2), one batch each;
    sequence numbers follow arrival, as on a shard."""
    target, read = sink
    transitions = {0: (1, 2), 1: (2, 3), 2: (1, 2)}
    arrived = [
        step("MODIFY", *transitions[index], sequence) for sequence, index in enumerate(order, 20)
    ]
    await deliver(target, [[event] for event in arrived])
    assert await read() == "3"


async def test_a_delete_and_a_reinsert_in_one_millisecond(sink: tuple[Sink, Reader]) -> None:
    target, read = sink
    removed = step("REMOVE", 1, None, 30)
    reinserted = step("INSERT", None, 7, 31)
    await deliver(target, [[reinserted], [removed], [step("REMOVE", 1, None, 32)]])
    assert await read() == "7"


async def test_an_undecidable_tie_is_counted(sink: tuple[Sink, Reader]) -> None:
    target, read = sink
    before = AMBIGUOUS_TIES.total
    await deliver(target, [[step("MODIFY", 1, 2, 40)], [step("MODIFY", 5, 6, 41)]])
    assert await read() == "6"  # the later in shard order
    assert AMBIGUOUS_TIES.total == before + 1
