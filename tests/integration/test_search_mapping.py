"""Every DynamoDB item can be indexed in OpenSearch and found by its keys (issue 14.1), and a
refusing destination holds the shard instead of draining it into the DLQ (issue 14.2).

Against the OpenSearch double, which maps documents as OpenSearch does (see
tests/opensearch_double/mapping.py for the rules and their sources): with the dynamic mapping
the sink used to create, a 38-digit number, 1E+125, a date-like string followed by another
string, an attribute whose type differs between items, 2,000 attributes or 32 levels of maps
were each a 400 for that document, so the record was parked and the document stayed stale.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from opensearchpy import AsyncOpenSearch

from consumer.local.stack import LocalStackState
from consumer.pipeline.processor import RetryPolicy, Route, ShardPipeline
from consumer.pipeline.search.mapping import INDEX_BODY
from consumer.pipeline.search.opensearch_sink import OpenSearchSink
from consumer.pipeline.search.settings import OpenSearchSettings
from consumer.pipeline.sink import SinkError
from consumer.records.batch import RawRecord, ReadBatch
from consumer.telemetry.metrics import (
    MetricsRegistry,
    Snapshot,
    emf_line,
    prometheus_text,
    take_snapshot,
)
from tests.change_factory import destination_record, insert
from tests.integration.test_search_opensearch import live_search_body
from tests.opensearch_double import OpenSearchDouble
from tests.pipeline_fakes import MemoryCheckpointer, MemoryDlq
from tests.service_harness import Deployment

SHARD = "shardId-000000000000"
_sequence = itertools.count(1)


def deep_map(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"S": "bottom"}
    for level in range(levels):
        value = {"M": {f"level{level}": value}}
    return value


# One attribute, "a", with a different type in each item; and the shapes dynamic mapping
# refuses. DynamoDB allows all of them (numbers: 38 digits, exponent -130..+125; maps and
# lists: 32 levels).
SHAPES: dict[str, dict[str, Any]] = {
    "n38": {"a": {"N": "12345678901234567890123456789012345678"}},
    "big": {"a": {"N": "1E+125"}},
    "tiny": {"a": {"N": "-1E-130"}},
    "decimal": {"a": {"N": "0.10"}},
    "date": {"a": {"S": "2024-07-03"}},
    "word": {"a": {"S": "shipped"}},
    "bool": {"a": {"BOOL": True}},
    "null": {"a": {"NULL": True}},
    "map": {"a": {"M": {"b": {"N": "1"}}}},
    "list": {"a": {"L": [{"N": "1"}, {"S": "x"}, {"M": {"c": {"BOOL": False}}}]}},
    "sets": {"a": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "1E+100"]}, "bs": {"BS": ["AAE="]}},
    "binary": {"a": {"B": "3q2+7w=="}},
    "deep": {"a": deep_map(31)},  # 32 levels counting "a"
    "wide": {f"attr{i}": {"N": str(i)} for i in range(2000)},
    "empty": {"a": {"S": ""}, "m": {"M": {}}, "l": {"L": []}},
    "odd_names": {"a.b": {"S": "dotted"}, " ": {"S": "blank"}, "=": {"N": "1"}},
}


def raw_insert(key: str, new: dict[str, Any], created_us: int = 1_000_000) -> RawRecord:
    record = destination_record("INSERT", key, created_us, new=new)
    return RawRecord(orjson.dumps(record), f"{next(_sequence):056d}", 1_700_000_000_000, "p")


def quick(endpoint: str, **kwargs: Any) -> OpenSearchSettings:
    options: dict[str, Any] = {
        "index": "orders",
        "auth": "none",
        "retry_base_s": 0.001,
        "retry_cap_s": 0.005,
        "max_retries": 1,
        **kwargs,
    }
    return OpenSearchSettings(endpoint=endpoint, **options)


def pipeline_for(
    sink: OpenSearchSink, dlq: MemoryDlq, checkpoints: MemoryCheckpointer
) -> ShardPipeline:
    policy = RetryPolicy(backoff_base_s=0.001, backoff_cap_s=0.01)
    return ShardPipeline("stream", SHARD, [Route(sink, policy=policy)], dlq, checkpoints)


@pytest.fixture
def double() -> Iterator[OpenSearchDouble]:
    with OpenSearchDouble() as fresh:
        yield fresh


@pytest.fixture
async def sink(double: OpenSearchDouble) -> AsyncIterator[OpenSearchSink]:
    writer = OpenSearchSink(quick(double.url))
    try:
        yield writer
    finally:
        await writer.aclose()


@pytest.fixture
async def client(double: OpenSearchDouble) -> AsyncIterator[AsyncOpenSearch]:
    reader = AsyncOpenSearch(hosts=[double.url])
    try:
        yield reader
    finally:
        await reader.close()


async def search_ids(client: AsyncOpenSearch, query: dict[str, Any]) -> list[str]:
    await client.indices.refresh(index="orders")
    response = await client.search(index="orders", body=live_search_body(query, size=100))
    return sorted(hit["_id"] for hit in response["hits"]["hits"])


# --- mapping ------------------------------------------------------------------------------


async def test_items_of_every_shape_are_indexed_and_none_parked(
    sink: OpenSearchSink, double: OpenSearchDouble, client: AsyncOpenSearch
) -> None:
    dlq, checkpoints = MemoryDlq(), MemoryCheckpointer()
    pipeline = pipeline_for(sink, dlq, checkpoints)
    records = [raw_insert(key, new) for key, new in SHAPES.items()]
    # One at a time, so that each shape meets the mapping the others left behind.
    for record in records:
        await pipeline.process(ReadBatch(SHARD, [record], 0, None))
    await pipeline.checkpoint_if_due(force=True)
    assert [(p.error[:80]) for p in dlq.parked] == []
    assert checkpoints.checkpoints[-1][0] == records[-1].sequence_number
    for key in SHAPES:
        assert double.source("orders", key) is not None
        assert await search_ids(client, {"term": {"search.keys": f"pk={key}"}}) == [key]


async def test_numbers_are_found_by_their_exact_value(
    sink: OpenSearchSink, client: AsyncOpenSearch
) -> None:
    events = [
        insert("a", 1_000, 1),
        insert("b", 1_000, 2),
    ]
    big = "12345678901234567890123456789012345678"
    from tests.change_factory import change

    events.append(change("INSERT", "c", 1_000, new={"n": {"N": big}, "f": {"N": "0.10"}}))
    events.append(change("INSERT", "d", 1_000, new={"n": {"N": big[:-1] + "9"}}))
    assert await sink.write(events) == {}
    assert await search_ids(client, {"term": {"search.values": f"n={big}"}}) == ["c"]
    # Numbers are written in one canonical form: 0.10 and 0.1 are the same number.
    assert await search_ids(client, {"term": {"search.values": "f=0.1"}}) == ["c"]
    assert await search_ids(client, {"term": {"search.values": "value=2"}}) == ["b"]


async def test_strings_are_found_by_value_and_by_words(
    sink: OpenSearchSink, client: AsyncOpenSearch
) -> None:
    from tests.change_factory import change

    new = {
        "status": {"S": "shipped"},
        "note": {"S": "Blue Widget, large"},
        "address": {"M": {"city": {"S": "Lyon"}}},
        "tags": {"L": [{"S": "red"}, {"SS": ["x"]}]},
    }
    assert await sink.write([change("INSERT", "o1", 1_000, new=new)]) == {}
    assert await search_ids(client, {"term": {"search.values": "status=shipped"}}) == ["o1"]
    assert await search_ids(client, {"term": {"search.values": "address.city=Lyon"}}) == ["o1"]
    assert await search_ids(client, {"term": {"search.values": "tags=red"}}) == ["o1"]
    assert await search_ids(client, {"match": {"search.text": "widget"}}) == ["o1"]


async def test_the_sink_creates_its_index_with_the_explicit_mapping(
    sink: OpenSearchSink, double: OpenSearchDouble
) -> None:
    await sink.check()
    mapping = double.mapping("orders")
    assert mapping["dynamic"] == "strict" and mapping.get("date_detection") is False
    assert mapping["properties"]["item"] == {"type": "object", "enabled": False}
    assert double.engine.indices["orders"].mapping.as_json() == mapping
    assert INDEX_BODY["mappings"]["properties"]["item"] == {"type": "object", "enabled": False}


async def test_an_index_with_an_incompatible_mapping_is_one_start_up_error(
    double: OpenSearchDouble,
) -> None:
    double.engine.create_index("orders", {"mappings": {"properties": {"item": {"type": "object"}}}})
    writer = OpenSearchSink(quick(double.url))
    try:
        with pytest.raises(SinkError) as raised:
            await writer.check()
    finally:
        await writer.aclose()
    message = str(raised.value)
    # A destination fault: at start one line (preflight), while running the shard waits.
    assert raised.value.retryable and "\n" not in message
    assert "index orders" in message and "item" in message
    assert not double.bulk_requests()


async def test_a_missing_index_is_an_error_when_the_sink_may_not_create_it(
    double: OpenSearchDouble,
) -> None:
    writer = OpenSearchSink(quick(double.url, create_index=False))
    try:
        with pytest.raises(SinkError) as raised:
            await writer.check()
    finally:
        await writer.aclose()
    assert "does not exist" in str(raised.value) and raised.value.retryable


# --- destination faults: wait, never park --------------------------------------------------


async def hold_then_release(
    double: OpenSearchDouble, sink: OpenSearchSink, release: Any
) -> ShardPipeline:
    """Process one batch while the destination refuses; it must hold (no checkpoint, nothing
    parked) until `release()` is called, then apply everything."""
    dlq, checkpoints = MemoryDlq(), MemoryCheckpointer()
    pipeline = pipeline_for(sink, dlq, checkpoints)
    records = [raw_insert(f"k{i}", {"v": {"N": str(i)}}) for i in range(3)]
    task = asyncio.create_task(pipeline.process(ReadBatch(SHARD, list(records), 0, None)))
    await asyncio.sleep(0.5)
    assert not task.done(), "the shard must hold while the destination refuses"
    assert dlq.parked == [] and checkpoints.checkpoints == []
    release()
    await asyncio.wait_for(task, 10)
    await pipeline.checkpoint_if_due(force=True)
    assert dlq.parked == []
    assert checkpoints.checkpoints[-1][0] == records[-1].sequence_number
    assert all(double.source("orders", f"k{i}") is not None for i in range(3))
    # The wait is counted: SinkWaits (EMF, alarm <app>-destination-refusing) and Prometheus.
    assert pipeline.stats.sink_waits["search"] > 0
    snapshot = take_snapshot(MetricsRegistry(pipelines=pipeline.stats))
    emf = orjson.loads(emf_line("ns", "app", 0, snapshot, Snapshot(), 60.0))
    assert emf["SinkWaits"] == emf["SinkWaits_search"] == pipeline.stats.sink_waits["search"]
    assert 'consumer_sink_waits_total{application="app",sink="search"}' in prometheus_text(
        "app", snapshot
    )
    return pipeline


async def test_a_write_blocked_index_holds_the_shard_until_it_lifts(
    double: OpenSearchDouble, sink: OpenSearchSink
) -> None:
    await sink.check()
    double.block_writes("orders")
    await hold_then_release(double, sink, lambda: double.unblock_writes("orders"))
    assert sink.destination_faults.get("cluster_block_exception", 0) > 0


@pytest.mark.parametrize("status", [401, 403])
async def test_access_denied_holds_the_shard_until_access_is_given(
    double: OpenSearchDouble, sink: OpenSearchSink, status: int
) -> None:
    await sink.check()
    double.deny_requests(status)
    await hold_then_release(double, sink, double.clear_faults)
    assert sink.destination_faults.get("security_exception", 0) > 0


async def test_a_write_block_is_a_retryable_failure_of_the_sink(
    double: OpenSearchDouble, sink: OpenSearchSink
) -> None:
    await sink.check()
    double.block_writes("orders")
    failures = await sink.write([insert("a", 1_000, 1)])
    assert list(failures) == [0] and failures[0].retryable
    assert "cluster_block_exception" in str(failures[0])


@pytest.mark.parametrize("status", [401, 403])
async def test_access_denied_at_start_is_a_start_up_error(
    double: OpenSearchDouble, sink: OpenSearchSink, status: int
) -> None:
    double.deny_requests(status)
    with pytest.raises(SinkError) as raised:
        await sink.check()
    assert str(status) in str(raised.value)
    assert len(double.requests) == 1  # not retried: one line at start, at once


# --- start-up, end to end -----------------------------------------------------------------


def _run_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumer", "run", "--until-idle", "1"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.parametrize("fault", ["incompatible_mapping", "access_denied"])
def test_an_unusable_index_stops_the_worker_in_one_line_before_any_lease(
    local_stack: LocalStackState, unique_name: str, double: OpenSearchDouble, fault: str
) -> None:
    """`consumer run` with an index whose mapping cannot hold every item (as an earlier
    version created it) or with access denied: one line naming pipelines.search, exit 1."""
    if fault == "incompatible_mapping":
        double.engine.create_index(unique_name, {"mappings": {"properties": {"item": {}}}})
    else:
        double.deny_requests(403)
    app = Deployment(local_stack, unique_name)
    app.create()
    env = app.environment(
        CONSUMER_PIPELINES__SEARCH__ENABLED="true",
        CONSUMER_PIPELINES__SEARCH__ENDPOINT=double.url,
        CONSUMER_PIPELINES__SEARCH__AUTH="none",
        CONSUMER_PIPELINES__SEARCH__INDEX=unique_name,
    )
    result = _run_once(env)
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("consumer:")]
    assert len(errors) == 1 and "pipelines.search" in errors[0], result.stderr[-2000:]
    expected = "incompatible mapping" if fault == "incompatible_mapping" else "403"
    assert expected in errors[0]
    assert not double.bulk_requests()
