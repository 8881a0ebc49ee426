"""Issue 19.4: the shards of one worker poll in turns, not all at the same moment.

All shards of a worker share one event loop. Polled at the same moments, their batches come
back together and each waits behind the others' decode: with 4 shards at 1,000 records/s
the last one's records waited ~3 batches' decode (the added latency's p99). Each shard keeps
its own rate (GetRecords: 5 calls/s per shard, Kinesis API reference) but calls on its own
turn within the polling interval.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from contextlib import aclosing
from itertools import pairwise
from typing import Any

import pytest

from consumer.sources.model import StartPosition
from consumer.sources.polling import PollingOptions, PollingReader, PollTurns
from tests.fake_event_stream import record

INTERVAL_S = 0.2
SHARDS = 4
CALLS_PER_SHARD = 6


class TipShards:
    """Shards at the tip: every GetRecords returns one record and MillisBehindLatest 0."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = {}

    async def get_shard_iterator(self, ShardId: str, **_: Any) -> dict[str, Any]:
        return {"ShardIterator": f"{ShardId}:0"}

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard, position = ShardIterator.rsplit(":", 1)
        self.calls.setdefault(shard, []).append(time.monotonic())
        return {
            "Records": [record(int(position), b"{}")],
            "MillisBehindLatest": 0,
            "NextShardIterator": f"{shard}:{int(position) + 1}",
        }


async def read_calls(reader: PollingReader, shard_id: str) -> None:
    async with aclosing(reader.read(shard_id, StartPosition.trim_horizon())) as batches:
        async for batch in batches:
            if int(batch.records[0].sequence_number) + 1 >= CALLS_PER_SHARD:
                break


async def test_shards_at_the_tip_poll_in_turns_not_at_the_same_moment() -> None:
    client = TipShards()
    reader = PollingReader(client, "arn", PollingOptions(interval_s=INTERVAL_S))
    await asyncio.gather(*(read_calls(reader, f"shardId-{n}") for n in range(SHARDS)))
    # Each call's distance to the nearest call of another shard; the median, so that a stall
    # of a loaded machine (two late calls firing together) does not decide the test.
    nearest = [
        min(
            abs(at - other)
            for shard2, times2 in client.calls.items()
            if shard2 != shard
            for other in times2
        )
        for shard, times in client.calls.items()
        for at in times
    ]
    typical = statistics.median(nearest)
    # Turns of 4 shards on the golden-ratio sequence are at least 0.146 intervals apart.
    assert typical >= INTERVAL_S * 0.1, f"shards typically polled {typical * 1000:.1f} ms apart"


async def test_each_shard_keeps_its_rate_while_taking_turns() -> None:
    client = TipShards()
    reader = PollingReader(client, "arn", PollingOptions(interval_s=INTERVAL_S))
    await asyncio.gather(*(read_calls(reader, f"shardId-{n}") for n in range(SHARDS)))
    for times in client.calls.values():
        gaps = [b - a for a, b in pairwise(times)]
        assert min(gaps) >= INTERVAL_S * 0.95  # never faster than the interval
        assert statistics.median(gaps) <= INTERVAL_S * 1.05  # on its turn, every interval


def test_turns_of_any_number_of_shards_are_spread_over_the_interval() -> None:
    for shards in (2, 3, 4, 8, 16):
        turns = PollTurns()
        phases = sorted(turns.phase(0.0) for _ in range(shards))
        gaps = [b - a for a, b in pairwise(phases)]
        gaps.append(1 - phases[-1] + phases[0])
        assert min(gaps) >= 0.3 / shards  # no two shards bunch up
    turns = PollTurns()
    phase = turns.phase(0.0)
    assert turns.first_call(turns.phase(0.0), 0.0, 0.2) == pytest.approx(0.2 * 0.618, abs=1e-3)
    # A call 20 ms late: the next comes back toward its turn without skipping one.
    late = turns.next_call(phase, last_call=0.2 + 0.02, interval=0.2)
    assert 0.22 + 0.19 <= late < 0.22 + 0.2
    on_time = turns.next_call(phase, last_call=0.2 + 0.002, interval=0.2)
    assert on_time == pytest.approx(0.4)  # a call at most 5 % late: the next is exactly on its turn
    early = turns.next_call(phase, last_call=0.2 - 1e-9, interval=0.2)
    assert early == pytest.approx(0.4)  # a timer that fired a hair early: still one interval
