"""A poison change among good changes of the same item, in one batch, for every sink.

Issues 15.1 and 21.1: replication and search write only the newest change per key of a batch.
When that newest change was poison, replication parked the good changes it had superseded (with
the poison's error) and search dropped them without a trace; the replica and the index stayed
stale. Required: only the failing record is parked, and the newest change that can be applied
is applied. The poison is the issue's own example: an S value that is a number; for the
replication hook, a change the hook refuses; for audit, a payload that is not a JSON object.
Every arrival order, and the poison at every place in time (oldest, middle, newest).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumer.pipeline.audit.settings import AuditSettings
from consumer.pipeline.audit.sink import AuditSink
from consumer.pipeline.decoders import decode_kinesis
from consumer.pipeline.processor import Route, ShardPipeline
from consumer.pipeline.replication import (
    ReplicationSection,
    ReplicationSink,
    load_transform,
)
from consumer.pipeline.search.local_index import LocalSearchIndex
from consumer.pipeline.search.opensearch_sink import OpenSearchSink
from consumer.pipeline.search.settings import LocalIndexSettings, OpenSearchSettings
from consumer.pipeline.sink import Sink
from consumer.records import ChangeEvent
from consumer.records.batch import RawRecord, ReadBatch
from tests.change_factory import destination_record
from tests.opensearch_double import OpenSearchDouble
from tests.pipeline_fakes import MemoryCheckpointer, MemoryDlq
from tests.replica_table import live_items
from tests.unit.test_audit_support import MemoryStore

pytestmark = pytest.mark.integration

GOOD_1 = ("MODIFY", {"qty": {"N": "1"}}, 1_000_001)
GOOD_2 = ("MODIFY", {"qty": {"N": "2"}}, 1_000_002)
POISON = ("MODIFY", {"qty": {"S": 5}}, 1_000_003)  # "an S value must be a string, not int"

Spec = tuple[str, dict[str, Any], int]


def timelines(poison_new: dict[str, Any]) -> list[tuple[list[Spec], Spec, str]]:
    """(arrival order, the poison, the qty the newest good change leaves) for the poison at
    every place in time and every arrival order of three changes.

    A poison that a newer good change supersedes is never written by a collapsing sink (its
    state is moot), so it is not parked either: see `expected_parked`."""
    cases = []
    for rank in range(3):
        created = [1_000_001, 1_000_002, 1_000_003]
        poison: Spec = ("MODIFY", poison_new, created[rank])
        goods: list[Spec] = [
            ("MODIFY", {"qty": {"N": str(t - 1_000_000)}}, t) for t in created if t != poison[2]
        ]
        newest_good = max(goods, key=lambda spec: spec[2])[1]["qty"]["N"]
        for order in itertools.permutations([*goods, poison]):
            cases.append((list(order), poison, newest_good))
    return cases


def expected_parked(case: tuple[list[Spec], Spec, str]) -> list[int]:
    order, poison, _ = case
    return [poison[2]] if poison[2] == max(spec[2] for spec in order) else []


def case_id(case: tuple[list[Spec], Spec, str]) -> str:
    order, poison, _ = case
    return "".join("P" if spec is poison else str(spec[2] % 10) for spec in order)


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


S_POISON = {"qty": {"S": 5}}
HOOK_POISON = {"qty": {"N": "9"}, "note": {"S": "poison"}}
Case = tuple[list[Spec], Spec, str]


@pytest.mark.parametrize("case", timelines(S_POISON), ids=case_id)
async def test_replication_parks_only_the_poison_and_applies_the_newest_good(
    replica: tuple[Any, str], case: Case
) -> None:
    client, table = replica
    order, _, newest_good = case
    dlq = await deliver(ReplicationSink(client, ReplicationSection(table=table)), order)
    assert parked_created(dlq) == expected_parked(case)
    (item,) = await live_items(client, table)
    assert item["qty"] == {"N": newest_good}


@pytest.mark.parametrize("case", timelines(HOOK_POISON), ids=case_id)
async def test_replication_hook_poison_parks_only_itself(
    replica: tuple[Any, str], case: Case
) -> None:
    client, table = replica
    order, _, newest_good = case
    hook = load_transform("tests.replication_hooks:explode_on_poison_note")
    dlq = await deliver(ReplicationSink(client, ReplicationSection(table=table), hook), order)
    assert parked_created(dlq) == expected_parked(case)
    assert all("transform failed" in parked.error for parked in dlq.parked)
    (item,) = await live_items(client, table)
    assert item["qty"] == {"N": newest_good}


@pytest.fixture
def double() -> Iterator[OpenSearchDouble]:
    with OpenSearchDouble() as started:
        yield started


@pytest.mark.parametrize("case", timelines(S_POISON), ids=case_id)
async def test_opensearch_parks_only_the_poison_and_indexes_the_newest_good(
    double: OpenSearchDouble, case: Case
) -> None:
    order, _, newest_good = case
    sink = OpenSearchSink(OpenSearchSettings(endpoint=double.url, auth="none"))
    try:
        dlq = await deliver(sink, order)
    finally:
        await sink.aclose()
    assert parked_created(dlq) == expected_parked(case)
    (doc_id,) = double.engine.indices["changes"].docs
    source = orjson.loads(double.source("changes", doc_id) or b"{}")
    assert source["item"]["qty"] == int(newest_good)


@pytest.mark.parametrize("case", timelines(S_POISON), ids=case_id)
async def test_local_index_parks_only_the_poison_and_indexes_the_newest_good(
    tmp_path: Path, case: Case
) -> None:
    order, _, newest_good = case
    index = LocalSearchIndex(LocalIndexSettings(directory=tmp_path))
    try:
        dlq = await deliver(index, order)
        (document,) = await index.documents()
    finally:
        await index.aclose()
    assert parked_created(dlq) == expected_parked(case)
    assert document.document()["item"]["qty"] == int(newest_good)


@pytest.mark.parametrize("poisoned", range(3))
async def test_audit_parks_only_the_payload_it_cannot_write(poisoned: int) -> None:
    """Audit writes every change (it does not collapse); one that cannot be embedded (its
    payload is not a JSON object) is parked alone and the other changes of its item are kept."""
    store = MemoryStore()
    audit = AuditSink(AuditSettings(bucket="audit-bucket"), store=store)
    events = [
        decode_kinesis(raw(spec, sequence), "stream", "shardId-000000000000")[0]
        for sequence, spec in enumerate([GOOD_1, GOOD_2, POISON], 1)
    ]
    events = [e for e in events if isinstance(e, ChangeEvent)]
    events[poisoned] = replace(events[poisoned], raw=b"[]")
    dlq = MemoryDlq()
    pipeline = ShardPipeline(
        "stream", "shardId-000000000000", [Route(audit)], dlq, MemoryCheckpointer()
    )
    await pipeline._deliver(Route(audit), events)
    await audit.flush()
    assert [p.sequence_number for p in dlq.parked] == [events[poisoned].position.sequence_number]
    written = [line["sequence_number"] for line in store.lines()]
    assert written == [e.position.sequence_number for i, e in enumerate(events) if i != poisoned]


async def test_every_sink_in_one_pipeline_parks_the_poison_once_per_sink_it_fails(
    replica: tuple[Any, str], tmp_path: Path
) -> None:
    """Replication, the local index and audit together: the poison is parked for the two
    sinks that refuse it, audit keeps every change, both others end at the newest good."""
    client, table = replica
    index = LocalSearchIndex(LocalIndexSettings(directory=tmp_path))
    store = MemoryStore()
    audit = AuditSink(AuditSettings(bucket="audit-bucket"), store=store)
    dlq = MemoryDlq()
    routes = [
        Route(ReplicationSink(client, ReplicationSection(table=table))),
        Route(index),
        Route(audit),
    ]
    pipeline = ShardPipeline("stream", "shardId-000000000000", routes, dlq, MemoryCheckpointer())
    records = [raw(spec, sequence) for sequence, spec in enumerate([GOOD_2, POISON, GOOD_1], 1)]
    try:
        await pipeline.process(ReadBatch("shardId-000000000000", records, 0, None))
        await audit.flush()
        (document,) = await index.documents()
    finally:
        await index.aclose()
    assert sorted(p.pipeline for p in dlq.parked) == ["replication", "search"]
    assert {p.sequence_number for p in dlq.parked} == {records[1].sequence_number}
    (item,) = await live_items(client, table)
    assert item["qty"] == {"N": "2"} and document.document()["item"]["qty"] == 2
    assert len(store.lines()) == 3


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
async def test_two_newest_poisons_are_both_parked_and_the_good_one_applied(
    replica: tuple[Any, str], order: tuple[int, ...]
) -> None:
    """The newest change fails, and so does the one it superseded: each is parked, alone,
    and the oldest (good) change is what the replica ends at."""
    client, table = replica
    specs: list[Spec] = [
        GOOD_1,
        ("MODIFY", {"qty": {"S": 6}}, 1_000_002),
        ("MODIFY", {"qty": {"S": 7}}, 1_000_003),
    ]
    dlq = await deliver(
        ReplicationSink(client, ReplicationSection(table=table)), [specs[i] for i in order]
    )
    assert sorted(parked_created(dlq)) == [1_000_002, 1_000_003]
    (item,) = await live_items(client, table)
    assert item["qty"] == {"N": "1"}
