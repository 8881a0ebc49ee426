"""Property (issue 14.1): random DynamoDB items of any shape are all indexed by the search
sink against the OpenSearch double that maps documents as OpenSearch does, none parked, and
each is found by its key.

Shapes: every attribute type (S, N, B, BOOL, NULL, SS, NS, BS, M, L), numbers of 38 digits
and up to 9.99...E+125, the same attribute with a different type in each item, maps nested
32 levels (DynamoDB's limit), items of 2,000 attributes, odd attribute names. All items of one
run go to one index, and runs share the double, so each item meets the mapping the ones
before it left (with dynamic mapping, the first type seen for a field would fix it).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.pipeline.processor import RetryPolicy, Route, ShardPipeline
from consumer.pipeline.search.opensearch_sink import OpenSearchSink
from consumer.pipeline.search.settings import OpenSearchSettings
from consumer.records.batch import RawRecord, ReadBatch
from tests.change_factory import destination_record
from tests.opensearch_double import OpenSearchDouble
from tests.pipeline_fakes import MemoryCheckpointer, MemoryDlq
from tests.unit.test_records_strategies import NAMES, VALUES, base64_binaries, serialize

SHARD = "shardId-000000000000"
_sequence = itertools.count(1)

EXTREME_NUMBERS = st.sampled_from(
    [
        Decimal("12345678901234567890123456789012345678"),
        Decimal("-99999999999999999999999999999999999999"),
        Decimal("9.9999999999999999999999999999999999999E+125"),
        Decimal("1E+125"),
        Decimal("-1E-128"),
        Decimal("0.10"),
    ]
)


def nested(levels: int, leaf: Any) -> Any:
    value = leaf
    for level in range(levels - 1):
        value = {f"l{level % 3}": value} if level % 2 else [value]
    return {"deep": value}


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    """One item (Python values, as boto3 takes them), without its key."""
    item: dict[str, Any] = draw(st.dictionaries(NAMES.filter(bool), VALUES, max_size=5))
    # "a" in every item, with whatever type this one draws.
    item["a"] = draw(st.one_of(VALUES, EXTREME_NUMBERS, st.just("2024-07-03T10:00:00Z")))
    shape = draw(st.sampled_from(["plain", "plain", "wide", "deep", "numbers"]))
    if shape == "wide":
        item.update({f"w{i}": Decimal(i) for i in range(2000)})
    elif shape == "deep":
        # A scalar inside 31 lists and maps: DynamoDB's limit of 32 levels, counting the
        # attribute (consumer.records parks anything deeper, tests/unit/test_decode_rules.py).
        item.update(nested(32, draw(st.one_of(st.text(max_size=8), EXTREME_NUMBERS))))
    elif shape == "numbers":
        item["n"] = draw(st.sets(EXTREME_NUMBERS, min_size=1))
    return item


@pytest.fixture(scope="module")
def shared_double() -> Iterator[OpenSearchDouble]:
    with OpenSearchDouble() as double:
        yield double


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(items(), min_size=1, max_size=6))
def test_items_of_any_shape_are_all_indexed_and_none_parked(
    shared_double: OpenSearchDouble, batch: list[dict[str, Any]]
) -> None:
    index = f"any-{uuid.uuid4().hex[:8]}"
    keys = [f"k{n}" for n in range(len(batch))]
    records = []
    for key, item in zip(keys, batch, strict=True):
        new = base64_binaries(serialize(item))
        record = destination_record("INSERT", key, 1_000_000 + next(_sequence), new=new)
        data = orjson.dumps(record)
        records.append(RawRecord(data, f"{next(_sequence):056d}", 1_700_000_000_000, "p"))

    async def deliver() -> tuple[MemoryDlq, MemoryCheckpointer]:
        sink = OpenSearchSink(
            OpenSearchSettings(endpoint=shared_double.url, index=index, auth="none", max_retries=0)
        )
        dlq, checkpoints = MemoryDlq(), MemoryCheckpointer()
        policy = RetryPolicy(max_attempts=1, backoff_base_s=0.001, backoff_cap_s=0.01)
        pipeline = ShardPipeline("stream", SHARD, [Route(sink, policy=policy)], dlq, checkpoints)
        try:
            # One record per batch: each meets the mapping the earlier ones left.
            for record in records:
                await pipeline.process(ReadBatch(SHARD, [record], 0, None))
            await pipeline.checkpoint_if_due(force=True)
        finally:
            await sink.aclose()
        return dlq, checkpoints

    dlq, checkpoints = asyncio.run(deliver())
    assert [parked.error for parked in dlq.parked] == []
    assert checkpoints.checkpoints[-1][0] == records[-1].sequence_number
    engine = shared_double.engine
    engine.indices[index].refresh()
    for key in keys:
        hits = engine.search(engine.indices[index], {"term": {"search.keys": f"pk={key}"}})
        assert [doc.doc_id for _, doc in hits] == [key]
