"""A poison change among good changes of the same item, in one batch, for every sink.

Issues 15.1 and 21.1: replication and search write only the newest change per key of a batch.
When that newest change was poison, replication parked the good changes it had superseded (with
the poison's error) and search dropped them without a trace; the replica and the index stayed
stale. Required: only the failing record is parked, and the newest change that can be applied
is applied. The poison is the issue's own example: an S value that is a number.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from consumer.aws import AwsEndpoints
from consumer.pipeline.processor import Route, ShardPipeline
from consumer.pipeline.replication import (
    ReplicationSettings,
    ReplicationSink,
    create_replica_table,
    live_items,
)
from consumer.pipeline.search.local_index import LocalSearchIndex
from consumer.pipeline.search.opensearch_sink import OpenSearchSink
from consumer.pipeline.search.settings import LocalIndexSettings, OpenSearchSettings
from consumer.pipeline.sink import Sink
from consumer.sources.model import RawRecord, ReadBatch
from tests.change_factory import destination_record
from tests.opensearch_double import OpenSearchDouble
from tests.pipeline_fakes import MemoryCheckpointer, MemoryDlq

pytestmark = pytest.mark.integration

GOOD_1 = ("MODIFY", {"qty": {"N": "1"}}, 1_000_001)
GOOD_2 = ("MODIFY", {"qty": {"N": "2"}}, 1_000_002)
POISON = ("MODIFY", {"qty": {"S": 5}}, 1_000_003)  # "an S value must be a string, not int"
NEWEST_POISON = [GOOD_1, GOOD_2, POISON]
ORDERS = list(itertools.permutations(NEWEST_POISON))


def raw(spec: tuple[str, dict[str, Any], int], sequence: int) -> RawRecord:
    name, new, created = spec
    record = destination_record(name, "k0055", created, new=new, old={"qty": {"N": "0"}})
    return RawRecord(orjson.dumps(record), f"{sequence:056d}", 1_700_000_000_000, "p")


async def deliver(sink: Sink, order: Sequence[tuple[str, dict[str, Any], int]]) -> MemoryDlq:
    """One batch through the shard pipeline, decoded as the service decodes (lazily: the
    poison fails only when a sink reads its image)."""
    dlq = MemoryDlq()
    pipeline = ShardPipeline(
        "stream", "shardId-000000000000", [Route(sink)], dlq, MemoryCheckpointer()
    )
    records = [raw(spec, sequence) for sequence, spec in enumerate(order, 1)]
    await pipeline.process(ReadBatch("shardId-000000000000", records, 0, None))
    return dlq


def parked_created(dlq: MemoryDlq) -> list[int]:
    return [orjson.loads(p.raw)["dynamodb"]["ApproximateCreationDateTime"] for p in dlq.parked]


@pytest_asyncio.fixture
async def replica(endpoints: AwsEndpoints, unique_name: str) -> AsyncIterator[tuple[Any, str]]:
    async with endpoints.aio_client("dynamodb") as client:
        await create_replica_table(
            client,
            unique_name,
            [{"AttributeName": "pk", "KeyType": "HASH"}],
            [{"AttributeName": "pk", "AttributeType": "S"}],
        )
        yield client, unique_name


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: "-".join(str(s[2] % 10) for s in o))
async def test_replication_parks_only_the_poison_and_applies_the_newest_good(
    replica: tuple[Any, str], order: Sequence[tuple[str, dict[str, Any], int]]
) -> None:
    client, table = replica
    await client.delete_item(TableName=table, Key={"pk": {"S": "k0055"}})
    dlq = await deliver(ReplicationSink(client, ReplicationSettings(table)), order)
    assert parked_created(dlq) == [POISON[2]]
    (item,) = await live_items(client, table)
    assert item["qty"] == {"N": "2"}


@pytest.fixture
def double() -> AsyncIterator[OpenSearchDouble]:
    with OpenSearchDouble() as started:
        yield started  # type: ignore[misc]


SearchFactory = Callable[[], Sink]


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: "-".join(str(s[2] % 10) for s in o))
async def test_opensearch_parks_only_the_poison_and_indexes_the_newest_good(
    double: OpenSearchDouble, order: Sequence[tuple[str, dict[str, Any], int]]
) -> None:
    sink = OpenSearchSink(OpenSearchSettings(endpoint=double.url, auth_mode="none"))
    try:
        dlq = await deliver(sink, order)
    finally:
        await sink.aclose()
    assert parked_created(dlq) == [POISON[2]]
    (doc_id,) = double.engine.indices["changes"].docs
    source = orjson.loads(double.source("changes", doc_id) or b"{}")
    assert source["item"]["qty"] == 2


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: "-".join(str(s[2] % 10) for s in o))
async def test_local_index_parks_only_the_poison_and_indexes_the_newest_good(
    tmp_path: Path, order: Sequence[tuple[str, dict[str, Any], int]]
) -> None:
    index = LocalSearchIndex(LocalIndexSettings(directory=tmp_path))
    try:
        dlq = await deliver(index, order)
        (document,) = await index.documents()
    finally:
        await index.aclose()
    assert parked_created(dlq) == [POISON[2]]
    assert document.document()["item"]["qty"] == 2
