"""Issue 19.4: the consumer's added latency starts when a batch's bytes come off the socket.

`consumer_added_ms` is "from the moment a record's bytes are read from the socket to its apply
in each sink". The readers stamp `read_at` themselves, before they decode the response (polling:
the GetRecords JSON and each record's base64) or the event (EFO): a stamp taken after the
decode hid it, and with 1,000 records a batch the decode is most of the consumer's own latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import pytest

from consumer.records.batch import RawRecord, ReadBatch
from consumer.service.shard_task import stamped
from consumer.sources.efo import stream_events
from consumer.sources.lean import kinesis_records
from consumer.sources.model import StartPosition
from consumer.sources.polling import PollingOptions, PollingReader
from tests.fake_event_stream import record, shard_event
from tests.unit.test_efo_event_stream import read_all

SLOW_DECODE_S = 0.05


class OneBatchShard:
    """A shard that answers one GetRecords with two records, noting when it answered."""

    def __init__(self) -> None:
        self.answered_at = 0.0

    async def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
        return {"ShardIterator": "0"}

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        self.answered_at = time.monotonic()
        records = [record(n, b"{}") for n in (1, 2)]
        return {"Records": records, "MillisBehindLatest": 0, "NextShardIterator": "1"}


async def test_a_polled_batch_is_stamped_before_its_records_are_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decode = kinesis_records

    def slow_decode(records: list[dict[str, Any]]) -> list[RawRecord]:
        time.sleep(SLOW_DECODE_S)  # a large batch's decode, made long enough to see
        return decode(records)

    monkeypatch.setattr("consumer.sources.polling.kinesis_records", slow_decode)
    shard = OneBatchShard()
    reader = PollingReader(shard, "arn", PollingOptions(interval_s=0.2))
    async with aclosing(reader.read("shardId-0", StartPosition.trim_horizon())) as batches:
        batch = await anext(batches)
        handed_over = time.monotonic()
    assert batch.read_at is not None
    assert shard.answered_at <= batch.read_at
    assert handed_over - batch.read_at >= SLOW_DECODE_S  # the decode counts as added latency


class SlowSocket:
    """An EFO response body whose one event arrives in two chunks, `gap_s` apart."""

    def __init__(self, frame: bytes, gap_s: float) -> None:
        self.frame = frame
        self.gap_s = gap_s
        self.last_chunk_at = 0.0

    async def remaining_chunks(self) -> AsyncIterator[bytes]:
        middle = len(self.frame) // 2
        yield self.frame[:middle]
        await asyncio.sleep(self.gap_s)
        self.last_chunk_at = time.monotonic()
        yield self.frame[middle:]


async def test_an_efo_event_is_stamped_when_its_last_chunk_is_read_before_its_decode() -> None:
    records = [record(n, b"x" * 1000) for n in range(200)]
    socket = SlowSocket(shard_event(records, "199"), gap_s=0.03)
    events = stream_events(socket)  # type: ignore[arg-type]
    event = await anext(events)
    decoded_at = time.monotonic()
    assert event.read_at is not None
    # Complete only with its last chunk; stamped then, before the payload's parse.
    assert socket.last_chunk_at <= event.read_at <= decoded_at
    assert len(event.payload["Records"]) == 200


async def test_efo_batches_carry_their_event_stamp_through_the_real_client() -> None:
    def script(call: int, body: dict[str, Any]) -> tuple[int, list[bytes]]:
        return 200, [
            shard_event([record(1, b"a")], "1"),
            shard_event([], None, child_shards=[]),
        ]

    subscribed_at = time.monotonic()
    batches, _ = await read_all(script)
    received_at = time.monotonic()
    stamps = [batch.read_at for batch in batches]
    assert all(stamp is not None and subscribed_at <= stamp <= received_at for stamp in stamps)


async def test_the_shard_loop_keeps_a_readers_stamp_and_stamps_only_unstamped_batches() -> None:
    already = ReadBatch("shardId-0", [], None, "1", read_at=12.5)
    bare = ReadBatch("shardId-0", [], None, "2")

    async def batches() -> AsyncIterator[ReadBatch]:
        yield already
        yield bare

    out = [batch async for batch in stamped(batches(), clock=lambda: 99.0)]
    assert out[0] is already  # no copy of a batch the reader stamped (one per batch, hot path)
    assert out[1].read_at == 99.0 and out[1].resume_after == "2"
