"""AuditSink with an in-memory store: buffering triggers, object cuts, de-duplication, bad
payloads, and flush failures that keep every record."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from consumer.pipeline.audit.lines import audit_line
from consumer.pipeline.audit.settings import AuditSettings
from consumer.pipeline.audit.sink import AuditSink
from consumer.pipeline.sink import Sink, SinkError
from tests.unit.test_audit_support import (
    SHARD,
    ManualClock,
    MemoryStore,
    change_event,
    change_events,
    client_error,
    ndjson,
    sequence,
)

HOUR_MS = 3_600_000


def make_sink(
    store: MemoryStore | None = None, clock: ManualClock | None = None, **settings: Any
) -> AuditSink:
    options: dict[str, Any] = {"retry_base_s": 0.0, "retry_cap_s": 0.0, **settings}
    return AuditSink(
        AuditSettings(bucket="audit-bucket", **options),
        store=store if store is not None else MemoryStore(),
        clock=clock or ManualClock(),
    )


def key_of(n: int, *, shard: str = SHARD, table: str = "orders", hour: str = "22") -> str:
    return f"audit/table={table}/dt=2024-07-03/hour={hour}/{shard}/{sequence(n)}-0.ndjson.gz"


def numbers(lines: list[dict[str, Any]]) -> list[str]:
    return [line["sequence_number"] for line in lines]


def test_the_sink_satisfies_the_protocol() -> None:
    sink: Sink = make_sink()
    assert sink.name == "audit"
    assert sink.buffered is True


# --- buffering triggers ------------------------------------------------------------------


async def test_nothing_is_due_while_buffers_are_small_and_young() -> None:
    clock = ManualClock()
    sink = make_sink(clock=clock)
    assert not sink.wants_flush(clock.now)
    await sink.write(change_events(range(10)))
    assert not sink.wants_flush(clock.now + 59.9)


async def test_a_buffer_is_due_when_it_reaches_max_bytes() -> None:
    size = len(audit_line(change_event(0)))
    sink = make_sink(max_bytes=3 * size + 10)
    await sink.write(change_events(range(3)))
    assert not sink.wants_flush(0)
    await sink.write([change_event(3)])
    assert sink.wants_flush(0)


async def test_a_buffer_is_due_when_it_reaches_max_records() -> None:
    sink = make_sink(max_records=5)
    await sink.write(change_events(range(4)))
    assert not sink.wants_flush(0)
    await sink.write([change_event(4)])
    assert sink.wants_flush(0)


async def test_a_buffer_is_due_when_its_oldest_record_has_waited_max_age() -> None:
    clock = ManualClock(now=100.0)
    sink = make_sink(clock=clock, max_age_s=30)
    await sink.write([change_event(0)])
    clock.now = 120.0
    await sink.write([change_event(1)])  # younger records do not reset the age
    assert not sink.wants_flush(129.9)
    assert sink.wants_flush(130.0)


async def test_flushing_empties_the_buffers() -> None:
    store = MemoryStore()
    sink = make_sink(store, max_records=2)
    await sink.write(change_events(range(2)))
    await sink.flush()
    assert not sink.wants_flush(10**9)
    assert sink.pending_records == 0
    await sink.flush()  # nothing to do: no request
    assert len(store.requests) == 1


# --- objects --------------------------------------------------------------------------------


async def test_flush_writes_one_gzip_ndjson_object_per_shard_buffer() -> None:
    store = MemoryStore()
    sink = make_sink(store)
    events = change_events(range(3))
    await sink.write(events)
    await sink.flush()
    assert list(store.objects) == [key_of(0)]
    assert ndjson(store.objects[key_of(0)]) == [json.loads(audit_line(event)) for event in events]
    request = store.requests[0]
    assert request["Bucket"] == "audit-bucket"
    assert request["ContentType"] == "application/x-ndjson"
    assert request["ContentEncoding"] == "gzip"
    assert request["ServerSideEncryption"] == "AES256"
    assert "SSEKMSKeyId" not in request
    assert request["Metadata"] == {"records": "3"}


async def test_sse_kms_with_a_key_and_no_sse() -> None:
    kms = MemoryStore()
    sink = make_sink(kms, sse="aws:kms", kms_key_id="alias/audit")
    await sink.write([change_event(0)])
    await sink.flush()
    assert kms.requests[0]["ServerSideEncryption"] == "aws:kms"
    assert kms.requests[0]["SSEKMSKeyId"] == "alias/audit"
    plain = MemoryStore()
    sink = make_sink(plain, sse="none")
    await sink.write([change_event(0)])
    await sink.flush()
    assert "ServerSideEncryption" not in plain.requests[0]


async def test_shards_and_tables_never_share_an_object() -> None:
    store = MemoryStore()
    sink = make_sink(store)
    batch = [
        change_event(n, shard=shard, table=table)
        for n in range(6)
        for shard in ("shardId-000000000001", "shardId-000000000002")
        for table in ("orders", "customers")
    ]
    await sink.write(batch)
    await sink.flush()
    assert len(store.objects) == 4
    for key, body in store.objects.items():
        lines = ndjson(body)
        assert len(lines) == 6
        assert {(line["shard_id"], line["table"]) for line in lines} == {
            (lines[0]["shard_id"], lines[0]["table"])
        }
        assert f"/{lines[0]['shard_id']}/" in key
        assert f"table={lines[0]['table']}/" in key


async def test_a_full_buffer_is_cut_into_objects_at_the_limits() -> None:
    store = MemoryStore()
    sink = make_sink(store, max_records=3)
    await sink.write(change_events(range(7)))
    await sink.flush()
    assert sorted(store.objects) == [key_of(0), key_of(3), key_of(6)]
    assert [len(ndjson(store.objects[key])) for key in sorted(store.objects)] == [3, 3, 1]


async def test_objects_never_span_an_hour() -> None:
    store = MemoryStore()
    sink = make_sink(store)
    boundary = 1720047600000  # 2024-07-03T23:00:00Z
    events = [
        change_event(0, arrival_ms=boundary - 2),
        change_event(1, arrival_ms=boundary - 1),
        change_event(2, arrival_ms=boundary),
        change_event(3, arrival_ms=boundary + HOUR_MS),
    ]
    await sink.write(events)
    await sink.flush()
    next_day = key_of(3).replace("dt=2024-07-03/hour=22", "dt=2024-07-04/hour=00")
    assert sorted(store.objects) == [key_of(0), key_of(2, hour="23"), next_day]
    assert numbers(ndjson(store.objects[key_of(0)])) == [sequence(0), sequence(1)]


# --- duplicates ------------------------------------------------------------------------------


async def test_a_redelivered_batch_is_buffered_once() -> None:
    store = MemoryStore()
    sink = make_sink(store)
    events = change_events(range(5))
    assert await sink.write(events) == {}
    assert await sink.write(events[2:]) == {}
    assert await sink.write([events[4], events[4]]) == {}
    assert sink.pending_records == 5
    await sink.flush()
    assert numbers(store.lines()) == [sequence(n) for n in range(5)]


async def test_records_redelivered_after_their_flush_are_not_written_again() -> None:
    # A bisected retry that re-sends part of a written object must neither duplicate it nor
    # rewrite that object's key with fewer records.
    store = MemoryStore()
    sink = make_sink(store)
    events = change_events(range(10))
    await sink.write(events)
    await sink.flush()
    await sink.write(events[:4] + change_events(range(10, 12)))
    await sink.flush()
    assert sorted(store.objects) == [key_of(0), key_of(10)]
    assert numbers(store.lines()) == [sequence(n) for n in range(12)]


async def test_the_same_change_at_another_position_is_kept() -> None:
    # The Kinesis destination delivering a change twice: same event id, new sequence number.
    # Both lines are stored; readers de-duplicate by event_id (the Athena view).
    store = MemoryStore()
    sink = make_sink(store)
    await sink.write([change_event(0), change_event(1, event_id="event-000000")])
    await sink.flush()
    assert [line["event_id"] for line in store.lines()] == ["event-000000"] * 2


# --- bad input ---------------------------------------------------------------------------------


async def test_a_payload_that_cannot_be_embedded_fails_alone_and_for_good() -> None:
    store = MemoryStore()
    sink = make_sink(store)
    events = change_events(range(4))
    events[1] = replace(events[1], raw=b"not json")
    events[3] = replace(events[3], raw=b"[]")
    failures = await sink.write(events)
    assert sorted(failures) == [1, 3]
    assert all(not failure.retryable for failure in failures.values())
    assert sequence(1) in str(failures[1])
    await sink.flush()
    assert numbers(store.lines()) == [sequence(0), sequence(2)]


# --- flush failures --------------------------------------------------------------------------


async def test_a_failed_put_keeps_the_buffer_and_the_next_flush_writes_the_same_object() -> None:
    store = MemoryStore(failures=[client_error("NoSuchBucket", 404)])
    sink = make_sink(store)
    await sink.write(change_events(range(3)))
    with pytest.raises(SinkError, match="NoSuchBucket") as raised:
        await sink.flush()
    assert raised.value.retryable is False
    assert len(store.requests) == 1, "a permanent error is not retried inside flush"
    assert sink.pending_records == 3
    assert sink.wants_flush(10**9)
    await sink.write(change_events(range(3, 5)))  # arrives between the two flushes
    await sink.flush()
    assert store.requests[1]["Key"] == store.requests[0]["Key"] == key_of(0)
    assert store.requests[1]["Body"] == store.requests[0]["Body"]
    assert numbers(store.lines()) == [sequence(n) for n in range(5)]
    assert sink.pending_records == 0


async def test_throttling_and_5xx_are_retried_inside_one_flush() -> None:
    store = MemoryStore(
        failures=[
            client_error("SlowDown", 503),
            client_error("InternalError", 500),
            EndpointConnectionError(endpoint_url="http://s3"),
        ]
    )
    sink = make_sink(store, put_attempts=4)
    await sink.write(change_events(range(2)))
    await sink.flush()
    assert len(store.requests) == 4
    assert numbers(store.lines()) == [sequence(0), sequence(1)]


async def test_a_transient_failure_that_outlasts_the_attempts_raises_retryable() -> None:
    store = MemoryStore(failures=[client_error("SlowDown", 503)] * 3)
    sink = make_sink(store, put_attempts=3)
    await sink.write([change_event(0)])
    with pytest.raises(SinkError) as raised:
        await sink.flush()
    assert raised.value.retryable is True
    assert sink.pending_records == 1
    await sink.flush()
    assert numbers(store.lines()) == [sequence(0)]


async def test_one_failing_shard_does_not_hold_back_the_others() -> None:
    store = MemoryStore(failures=[client_error("AccessDenied", 403)])
    sink = make_sink(store, flush_concurrency=1)
    await sink.write([change_event(0, shard="shardId-000000000001")])
    await sink.write([change_event(0, shard="shardId-000000000002")])
    with pytest.raises(SinkError, match="1 of 2"):
        await sink.flush()
    assert sink.pending_records == 1
    assert len(store.objects) == 1
    await sink.flush()
    assert len(store.objects) == 2


async def test_records_written_during_a_flush_go_to_a_later_object() -> None:
    store = MemoryStore(gate=asyncio.Event())
    sink = make_sink(store)
    await sink.write(change_events(range(3)))
    flushing = asyncio.create_task(sink.flush())
    await store.called.wait()
    await sink.write(change_events(range(2, 6)))  # 2 is in flight: a duplicate
    assert store.gate is not None
    store.gate.set()
    await flushing
    assert list(store.objects) == [key_of(0)]
    assert sink.pending_records == 3
    await sink.flush()
    assert sorted(store.objects) == [key_of(0), key_of(3)]
    assert numbers(store.lines()) == [sequence(n) for n in range(6)]


# --- lifetime --------------------------------------------------------------------------------


async def test_a_factory_client_is_opened_at_the_first_flush_and_closed_by_aclose() -> None:
    store = MemoryStore()
    opened: list[str] = []

    @asynccontextmanager
    async def factory() -> AsyncIterator[MemoryStore]:
        opened.append("open")
        yield store
        opened.append("closed")

    async with AuditSink(AuditSettings(bucket="audit-bucket"), store_factory=factory) as sink:
        await sink.write([change_event(0)])
        assert opened == []
        await sink.flush()
        await sink.flush()
        assert opened == ["open"]
    assert opened == ["open", "closed"]
    with pytest.raises(RuntimeError, match="closed"):
        await sink.flush()


async def test_a_given_client_stays_open() -> None:
    class ClosableStore(MemoryStore):
        closed = False

        async def close(self) -> None:
            self.closed = True

    store = ClosableStore()
    sink = make_sink(store)
    await sink.write(change_events(range(2)))
    await sink.flush()
    await sink.aclose()
    assert not store.closed  # its owner closes it
    assert len(store.objects) == 1


def test_exactly_one_of_store_and_factory() -> None:
    @asynccontextmanager
    async def factory() -> AsyncIterator[MemoryStore]:
        yield MemoryStore()

    settings = AuditSettings(bucket="audit-bucket")
    with pytest.raises(ValueError, match="exactly one"):
        AuditSink(settings)
    with pytest.raises(ValueError, match="exactly one"):
        AuditSink(settings, store=MemoryStore(), store_factory=factory)


async def test_large_batches_yield_to_the_event_loop() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    sink = make_sink()
    before = ticks
    await sink.write(change_events(range(4100)))
    task.cancel()
    assert ticks - before >= 2
    assert sink.pending_records == 4100
