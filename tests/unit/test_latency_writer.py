"""The probe writer: a steady pace, conditional puts that never overwrite an item, and one
clear error when a put fails."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from consumer.compare.latency.probes import (
    PROBE_WRITTEN_US,
    KeyAttribute,
    Phase,
    ProbeKeys,
    ProbeTag,
)
from consumer.compare.latency.writer import ProbeWriteError, ProbeWriter

TAG = ProbeTag("r", "efo", Phase.MEASURE)
KEYS = ProbeKeys(KeyAttribute("pk", "S"))


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds

    def wall_us(self) -> int:
        return int(self.now * 1_000_000)


class FakeTable:
    def __init__(self, clock: FakeTime, put_s: float = 0.0, fail: str | None = None) -> None:
        self.clock = clock
        self.put_s = put_s
        self.fail = fail
        self.puts: list[dict[str, Any]] = []
        self.deletes: list[dict[str, Any]] = []

    def put_item(self, **kwargs: Any) -> None:
        if self.fail:
            raise ClientError({"Error": {"Code": self.fail, "Message": "no"}}, "PutItem")
        self.clock.now += self.put_s
        self.puts.append(kwargs)

    def delete_item(self, **kwargs: Any) -> None:
        self.deletes.append(kwargs)


def writer(table: FakeTable, clock: FakeTime) -> ProbeWriter:
    return ProbeWriter(
        table, "orders", KEYS, clock_us=clock.wall_us, monotonic=clock.monotonic, sleep=clock.sleep
    )


def test_probes_are_written_at_a_steady_pace() -> None:
    clock = FakeTime()
    table = FakeTable(clock, put_s=0.01)
    probes = writer(table, clock).write_series(TAG, 4, rate_per_s=20)
    assert [probe.seq for probe in probes] == [0, 1, 2, 3]
    # Each put takes 10 ms, so the writer sleeps the other 40 ms of each 50 ms slot.
    assert clock.sleeps == [0.04, 0.04, 0.04]
    assert [probe.written_us for probe in probes] == [
        100_000_000,
        100_050_000,
        100_100_000,
        100_150_000,
    ]


def test_a_slow_table_is_written_back_to_back_without_sleeping() -> None:
    clock = FakeTime()
    table = FakeTable(clock, put_s=0.2)
    writer(table, clock).write_series(TAG, 3, rate_per_s=20)
    assert clock.sleeps == []


def test_a_put_is_conditional_and_carries_its_write_time() -> None:
    clock = FakeTime()
    table = FakeTable(clock)
    probe = writer(table, clock).put(TAG, 5)
    (put,) = table.puts
    assert put["TableName"] == "orders"
    assert put["ConditionExpression"] == "attribute_not_exists(#k)"
    assert put["ExpressionAttributeNames"] == {"#k": "pk"}
    assert put["Item"]["pk"] == {"S": "latency-probe#r/efo/measure#5"}
    assert put["Item"][PROBE_WRITTEN_US] == {"N": str(probe.written_us)}


def test_a_failed_put_names_the_probe_and_the_error() -> None:
    clock = FakeTime()
    probe_writer = writer(FakeTable(clock, fail="ConditionalCheckFailedException"), clock)
    with pytest.raises(ProbeWriteError, match="probe latency-probe#r/efo/measure#0 into table "
                       "orders: ConditionalCheckFailedException"):  # fmt: skip
        probe_writer.put(TAG, 0)
    assert probe_writer.written == []


def test_written_probes_are_remembered_and_can_be_deleted() -> None:
    clock = FakeTime()
    table = FakeTable(clock)
    probe_writer = writer(table, clock)
    probe_writer.put(TAG, 0)
    probe_writer.write_series(TAG, 2, rate_per_s=100)
    assert len(probe_writer.written) == 3
    assert probe_writer.delete(probe_writer.written) == 3
    assert table.deletes[0] == {"TableName": "orders", "Key": {"pk": {"S": KEYS.label(TAG, 0)}}}


def test_the_rate_must_be_positive() -> None:
    clock = FakeTime()
    with pytest.raises(ValueError, match="rate"):
        writer(FakeTable(clock), clock).write_series(TAG, 1, rate_per_s=0)
