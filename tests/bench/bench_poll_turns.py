"""What polling in turns does to the added latency, without emulators: one event loop, 4 shards.

Run by `make bench`. Four shards at the tip, each answering every GetRecords with the records
that arrived since the last call (BENCH_TURNS_RATE, default 1,000 destination records of
~1.7 KB per second per shard, as bench_added_latency.py), read by one PollingReader at a 0.2 s
interval; each shard's task decodes its batch as the pipeline does (`decode_kinesis`) right
away. Records are timed from their response's arrival (the fake answers after 1 ms of
"network") to their batch decoded: a response that arrives while the loop decodes another
shard's batch waits in the socket buffer, unseen by any stamp the process can take. Rounds
alternate polls in turns (polling.py's PollTurns) and all shards polling at the same moments,
BENCH_TURNS_SECONDS (default 5) each, 3 rounds; prints the medians of
`poll_turns_added_ms_p50_<turns|together>` and `_p99_` (weighted by records), and the
machine's 1-minute load.
"""

from __future__ import annotations

import asyncio
import base64
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consumer.pipeline.decoders import decode_kinesis
from consumer.sources.model import StartPosition
from consumer.sources.polling import PollingOptions, PollingReader, PollTurns
from tests.bench.bench_e2e import record
from tests.bench.latency_breakdown import weighted_percentile

RATE = float(os.environ.get("BENCH_TURNS_RATE", "1000"))
SECONDS = float(os.environ.get("BENCH_TURNS_SECONDS", "5"))
SHARDS = 4
ROUNDS = 3


NETWORK_S = 0.001


class LiveShards:
    """Shards whose records arrive at RATE per second from the first call."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.arrived_at: dict[tuple[str, int], float] = {}  # (shard, end) -> response arrival
        self.data = [base64.b64encode(record(n)).decode() for n in range(1000)]

    async def get_shard_iterator(self, ShardId: str, **_: Any) -> dict[str, Any]:
        return {"ShardIterator": f"{ShardId}:0"}

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard, position = ShardIterator.rsplit(":", 1)
        start = int(position)
        end = max(start, int((time.monotonic() - self.started) * RATE))
        self.arrived_at[(shard, end)] = time.monotonic() + NETWORK_S
        await asyncio.sleep(NETWORK_S)
        records = [
            {
                "Data": self.data[n % 1000],
                "SequenceNumber": str(n),
                "ApproximateArrivalTimestamp": 1.0,
                "PartitionKey": "k",
            }
            for n in range(start, end)
        ]
        return {"Records": records, "MillisBehindLatest": 0, "NextShardIterator": f"{shard}:{end}"}


async def one_round() -> list[tuple[float, int]]:
    shards = LiveShards()
    reader = PollingReader(shards, "arn", PollingOptions(interval_s=0.2))
    samples: list[tuple[float, int]] = []
    warm_until = time.monotonic() + 1.0

    async def shard(shard_id: str) -> None:
        async for batch in reader.read(shard_id, StartPosition.trim_horizon()):
            for raw in batch.records:
                decode_kinesis(raw, "s", shard_id)
            end = int(batch.records[-1].sequence_number) + 1 if batch.records else None
            arrived = shards.arrived_at.pop((shard_id, end), None) if end else None
            if arrived is not None and time.monotonic() > warm_until:
                samples.append((time.monotonic() - arrived, len(batch.records)))

    tasks = [asyncio.create_task(shard(f"shardId-{n}")) for n in range(SHARDS)]
    await asyncio.sleep(SECONDS)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return samples


def main() -> None:
    turns_first_call, turns_next_call = PollTurns.first_call, PollTurns.next_call
    figures: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        for label in ("together", "turns"):
            if label == "together":
                PollTurns.first_call = lambda self, phase, now, interval: now  # type: ignore[method-assign]
                PollTurns.next_call = (  # type: ignore[method-assign]
                    lambda self, phase, last_call, interval: last_call + interval
                )
            else:
                PollTurns.first_call = turns_first_call  # type: ignore[method-assign]
                PollTurns.next_call = turns_next_call  # type: ignore[method-assign]
            samples = asyncio.run(one_round())
            for q in (50, 99):
                figures.setdefault(f"poll_turns_added_ms_p{q}_{label}", []).append(
                    weighted_percentile(samples, q) * 1000
                )
    print(f"poll_turns_load_1min {os.getloadavg()[0]:.1f} load")
    for name, values in sorted(figures.items()):
        print(f"{name} {statistics.median(values):.2f} ms")


if __name__ == "__main__":
    main()
