"""The replication sink against moto's DynamoDB: versioned, idempotent, no resurrection."""

from __future__ import annotations

import random
from typing import Any

import pytest

from consumer.aws import AwsEndpoints
from consumer.pipeline.replication import (
    DELETED,
    EXPIRES_AT,
    ReplicationSection,
    ReplicationSink,
    load_transform,
)
from consumer.records import ChangeEvent
from tests.change_factory import change, insert, remove, upsert
from tests.replica_table import live_items

pytestmark = pytest.mark.integration


def values(items: list[dict[str, Any]]) -> dict[str, int]:
    return {item["pk"]["S"]: int(item["value"]["N"]) for item in items}


async def test_duplicates_and_disorder_converge_to_the_newest(replica: tuple[Any, str]) -> None:
    client, table = replica
    sink = ReplicationSink(client, ReplicationSection(table=table))
    history: list[ChangeEvent] = []
    expected: dict[str, int] = {}
    for key in ("a", "b", "c", "d"):
        for step in range(1, 6):
            history.append(upsert(key, 1_000_000 * step, step))
        expected[key] = 5
    history.append(remove("d", 9_000_000))
    del expected["d"]
    deliveries = history + random.Random(1).sample(history, 10)  # duplicates
    random.Random(2).shuffle(deliveries)  # disorder
    for start in range(0, len(deliveries), 7):
        assert await sink.write(deliveries[start : start + 7]) == {}
    assert values(await live_items(client, table)) == expected
    assert sink.conditional_skips > 0


async def test_a_late_insert_never_resurrects_a_deleted_item(replica: tuple[Any, str]) -> None:
    client, table = replica
    sink = ReplicationSink(client, ReplicationSection(table=table, tombstone_ttl_s=3600))
    assert await sink.write([insert("k", 1_000, 1), remove("k", 3_000)]) == {}
    assert await sink.write([insert("k", 1_000, 1), upsert("k", 2_000, 2)]) == {}
    assert await live_items(client, table) == []
    raw = await client.get_item(TableName=table, Key={"pk": {"S": "k"}}, ConsistentRead=True)
    assert raw["Item"][DELETED] == {"BOOL": True}
    assert int(raw["Item"][EXPIRES_AT]["N"]) > 0
    # A newer insert after the delete does bring it back.
    assert await sink.write([insert("k", 4_000, 4)]) == {}
    assert values(await live_items(client, table)) == {"k": 4}


async def test_same_microsecond_ties_break_by_sequence_number(replica: tuple[Any, str]) -> None:
    client, table = replica
    sink = ReplicationSink(client, ReplicationSection(table=table))
    later = upsert("t", 5_000, 2, sequence=200)
    earlier = upsert("t", 5_000, 1, sequence=100)
    assert await sink.write([later]) == {}
    assert await sink.write([earlier]) == {}
    assert values(await live_items(client, table)) == {"t": 2}


async def test_projection_and_transform(replica: tuple[Any, str]) -> None:
    client, table = replica
    settings = ReplicationSection(
        table=table, include_attributes=["value", "secret"], exclude_attributes=["secret"]
    )
    sink = ReplicationSink(
        client, settings, transform=load_transform("tests.replication_hooks:upper_note")
    )
    event = change(
        "INSERT",
        "p",
        1_000,
        new={"value": {"N": "1"}, "secret": {"S": "x"}, "note": {"S": "hi"}, "other": {"S": "y"}},
    )
    skipped = change("INSERT", "skip-me", 1_000, new={"value": {"N": "1"}})
    assert await sink.write([event, skipped]) == {}
    items = await live_items(client, table)
    assert items == [{"pk": {"S": "p"}, "value": {"N": "1"}, "note": {"S": "HI"}}]


async def test_a_failing_transform_fails_only_its_record(replica: tuple[Any, str]) -> None:
    client, table = replica
    sink = ReplicationSink(
        client,
        ReplicationSection(table=table),
        transform=load_transform("tests.replication_hooks:explode_on_bad"),
    )
    failures = await sink.write([insert("good", 1, 1), insert("bad", 1, 2), insert("fine", 1, 3)])
    assert list(failures) == [1]
    assert failures[1].retryable is False
    assert "transform failed" in str(failures[1])
    assert values(await live_items(client, table)) == {"good": 1, "fine": 3}


async def test_a_transform_s_mistyped_item_fails_only_its_record(replica: tuple[Any, str]) -> None:
    """botocore refuses the item before sending it (ParamValidationError, not a ClientError):
    that is the record's fault, not the batch's."""
    client, table = replica
    sink = ReplicationSink(
        client,
        ReplicationSection(table=table),
        transform=load_transform("tests.replication_hooks:mistype_bad"),
    )
    failures = await sink.write([insert("good", 1, 1), insert("bad", 1, 2), insert("fine", 1, 3)])
    assert list(failures) == [1]
    assert failures[1].retryable is False
    assert "ParamValidationError" in str(failures[1])
    assert values(await live_items(client, table)) == {"good": 1, "fine": 3}


async def test_an_oversized_item_is_a_non_retryable_record_failure(
    replica: tuple[Any, str],
) -> None:
    client, table = replica
    sink = ReplicationSink(client, ReplicationSection(table=table))
    huge = change("INSERT", "huge", 1, new={"blob": {"S": "x" * 500_000}})
    failures = await sink.write([insert("ok", 1, 1), huge])
    assert list(failures) == [1]
    assert not failures[1].retryable


async def test_a_missing_table_is_a_retryable_outage(endpoints: AwsEndpoints) -> None:
    async with endpoints.aio_client("dynamodb") as client:
        sink = ReplicationSink(client, ReplicationSection(table="no-such-table"))
        failures = await sink.write([insert("x", 1, 1), insert("y", 1, 1)])
        assert sorted(failures) == [0, 1]
        assert all(f.retryable and "missing" in str(f) for f in failures.values())


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("nocolon", "must look like"),
        ("no_such_module_xyz:f", "cannot be imported"),
        ("tests.replication_hooks:not_there", "is not a callable"),
    ],
)
def test_bad_transform_references_are_clear_errors(reference: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_transform(reference)
