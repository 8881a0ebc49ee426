"""One consumer per process for the end-to-end benchmark (`bench_e2e.py` runs this file).

    python tests/bench/e2e_consumers.py service|peer|raw STREAM KINESIS_URL DYNAMODB_URL N [MODE]

Each reads the preloaded stream from TRIM_HORIZON until it has seen N distinct eventIDs, and
prints `cpu_us_per_record X`: this process's CPU (user + system) from building the consumer to
the N-th distinct eventID, divided by N. Imports are done before the clock starts.
- service: this project's worker (`Worker`, leases and checkpoints in a real lease table on
  moto), its sinks replaced by one that collects eventIDs;
- peer: async-kinesis with its library defaults and its in-memory checkpointer (its default
  processor parses each record as JSON);
- raw: a bare aiobotocore loop, GetShardIterator + GetRecords per shard + `json.loads` of each
  record, no leases and no checkpoints: the floor a consumer library is measured against.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import structlog
from aiobotocore.session import get_session

from consumer.pipeline.processor import Route
from consumer.pipeline.sink import NO_FAILURES, Failures
from consumer.records import ChangeEvent
from consumer.service.worker import Worker
from consumer.settings import Settings


class DistinctEvents:
    """A sink that only collects eventIDs (what the peers are measured on too)."""

    name = "collector"
    buffered = False

    def __init__(self) -> None:
        self.seen: set[str] = set()

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        self.seen.update(event.event_id for event in events)
        return NO_FAILURES

    def wants_flush(self, now_monotonic: float) -> bool:
        return False

    async def flush(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


async def run_service(stream: str, kinesis: str, dynamodb: str, n: int, mode: str) -> float:
    """With BENCH_SINKS (JSON: a `pipelines` section and more), those sinks run too."""
    extra: dict[str, Any] = json.loads(os.environ.get("BENCH_SINKS", "{}"))
    started = time.process_time()
    settings = Settings(
        application=f"bench-{mode}-{uuid.uuid4().hex[:6]}",
        stream={"name": stream, "mode": mode, "polling_interval_s": 0.2},
        aws={
            "endpoint_kinesis": kinesis,
            "endpoint_dynamodb": dynamodb,
            "access_key_id": "000000000000",
            "secret_access_key": "local",
        },
        pipelines={"null": {"enabled": True}},
        telemetry={"emf": False, "health_port": None, "log_level": "error"},
        leases={"take_interval_s": 0.5, "heartbeat_interval_s": 1.0},
        checkpoint_interval_s=1.0,
    )
    sink = DistinctEvents()
    if extra:  # real sinks configured: they all run, and the collector beside them
        settings = Settings(**deep_merge(settings.model_dump(), extra))
        worker = Worker(settings, routes_hook=lambda _shard, routes: [*routes, Route(sink)])
    else:
        worker = Worker(settings, routes_hook=lambda _shard, _routes: [Route(sink)])
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    warmup = int(os.environ.get("BENCH_WARMUP_RECORDS", "0"))
    while len(sink.seen) < n:
        if warmup and len(sink.seen) >= warmup:  # start-up catch-up is not the steady state
            warmup = 0
            worker.state.metrics.added_latency.by_sink.clear()  # shared by every pipeline
        if run.done():
            run.result()
            raise RuntimeError("the worker stopped early")
        await asyncio.sleep(0.005)
    cpu = time.process_time() - started
    for name, histogram in sorted(worker.state.metrics.added_latency.by_sink.items()):
        if name == DistinctEvents.name and extra:
            continue  # beside real sinks it is not one of them
        p50, p99 = histogram.percentile_ms(50), histogram.percentile_ms(99)
        print(f"added_ms {name} {p50 or 0:.2f} {p99 or 0:.2f}")
    stop.set()
    await run
    return cpu


async def run_peer(stream: str, kinesis: str, n: int) -> float:
    from kinesis import Consumer, MemoryCheckPointer

    started = time.process_time()
    seen: set[str] = set()
    async with Consumer(
        stream_name=stream,
        endpoint_url=kinesis,
        region_name="us-east-1",
        checkpointer=MemoryCheckPointer(name="bench"),
    ) as consumer:
        while len(seen) < n:
            async for item in consumer:
                seen.add(item["eventID"])
                if len(seen) >= n:
                    break
            else:
                await asyncio.sleep(0.05)
    return time.process_time() - started


async def run_raw(stream: str, kinesis: str, n: int) -> float:
    started = time.process_time()
    seen: set[str] = set()
    done = asyncio.Event()
    async with get_session().create_client(
        "kinesis", endpoint_url=kinesis, region_name="us-east-1"
    ) as client:
        shards = (await client.list_shards(StreamName=stream))["Shards"]

        async def read(shard_id: str) -> None:
            iterator = (
                await client.get_shard_iterator(
                    StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )
            )["ShardIterator"]
            while iterator and not done.is_set():
                response = await client.get_records(ShardIterator=iterator, Limit=10_000)
                for record in response["Records"]:
                    seen.add(json.loads(record["Data"])["eventID"])
                if len(seen) >= n:
                    done.set()
                iterator = response.get("NextShardIterator")
                if not response["Records"]:
                    await asyncio.sleep(0.2)

        readers = [asyncio.create_task(read(shard["ShardId"])) for shard in shards]
        await done.wait()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return time.process_time() - started


def main(argv: list[str]) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "000000000000"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)
    which, stream, kinesis, dynamodb, count = argv[:5]
    mode = argv[5] if len(argv) > 5 else "polling"
    n = int(count)
    runs: dict[str, Any] = {
        "service": lambda: run_service(stream, kinesis, dynamodb, n, mode),
        "peer": lambda: run_peer(stream, kinesis, n),
        "raw": lambda: run_raw(stream, kinesis, n),
    }
    cpu = asyncio.run(runs[which]())
    print(f"cpu_us_per_record {cpu / n * 1e6:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
