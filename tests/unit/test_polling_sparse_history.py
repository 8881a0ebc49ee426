"""Issue 14.6: crossing sparse history at the shard's call rate, not the polling interval.

Kinesis answers GetRecords on a sparse part of a shard with *empty* batches while
MillisBehindLatest is still above zero ("GetRecords ... can return empty Records even when
there are records further in the shard", GetRecords API reference; KCL's
`idleTimeBetweenReadsInMillis` applies only at the tip). kinesis-mock never does, so this
stand-in does: 30 empty batches, behind, before the data. A reader that paused the polling
interval after each would need days to cross a year of sparse history.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from consumer.sources.model import StartPosition
from consumer.sources.polling import MIN_POLL_INTERVAL_S, PollingOptions, PollingReader

EMPTY_BEHIND = 30


class SparseShard:
    """Empty batches while behind, then two records, then the tip."""

    def __init__(self) -> None:
        self.call_times: list[float] = []

    async def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        return {"ShardIterator": "0"}

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        self.call_times.append(time.monotonic())
        position = int(ShardIterator)
        if position < EMPTY_BEHIND:
            return {
                "Records": [],
                "MillisBehindLatest": 86_400_000,
                "NextShardIterator": str(position + 1),
            }
        records = [
            {
                "Data": base64.b64encode(b"x").decode(),
                "SequenceNumber": str(n),
                "ApproximateArrivalTimestamp": 1.0,
                "PartitionKey": "k",
            }
            for n in (1, 2)
        ]
        return {"Records": records, "MillisBehindLatest": 0, "NextShardIterator": str(position + 1)}


async def test_empty_batches_while_behind_are_read_at_the_shard_rate() -> None:
    shard = SparseShard()
    reader = PollingReader(shard, "arn", PollingOptions(interval_s=1.0))
    started = time.monotonic()
    async for batch in reader.read("shardId-0", StartPosition.trim_horizon()):
        if batch.records:
            break
    elapsed = time.monotonic() - started
    # 30 calls at the shard's 5 calls/s take ~6 s; at the 1 s polling interval, 30 s.
    assert elapsed < EMPTY_BEHIND * MIN_POLL_INTERVAL_S + 2.0
    gaps = [b - a for a, b in zip(shard.call_times, shard.call_times[1:], strict=False)]
    assert min(gaps) >= MIN_POLL_INTERVAL_S * 0.95  # never faster than 5 calls/s per shard
