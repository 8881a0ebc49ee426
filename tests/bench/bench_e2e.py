"""End to end: the service in burst mode against the pure-Python peer async-kinesis.

Run by `make bench`. N pre-loaded Kinesis destination records (MODIFY, both images, ~1.7 KB)
over 4 shards go through the whole consumer: reading, decoding, a null sink and checkpoints in
the lease table. The same stream is then read by async-kinesis with its in-memory checkpointer.
Both run in this process; CPU is this process's CPU time (user + system) from the first
record read to the last, divided by the records. The emulators run in other processes and are
not counted.

- polling: on moto's Kinesis (fast to load, so N is large: BENCH_E2E_RECORDS, default 20,000)
- efo: on kinesis-mock (slow to load: BENCH_E2E_EFO_RECORDS, default 4,000)

Prints `e2e_cpu_us_per_record_polling N`, `e2e_cpu_us_per_record_efo N`,
`peer_async_kinesis_cpu_us_per_record N` and `e2e_cpu_vs_async_kinesis X` (polling vs the peer
on the same stream, in the same run).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import orjson
import structlog

from consumer.aws import AwsEndpoints
from consumer.local.sample_orders import create_kinesis_stream
from consumer.local.stack import LocalStack, LocalStackState
from consumer.service.worker import Worker
from consumer.settings import Settings

SHARDS = 4
POLLING_RECORDS = int(os.environ.get("BENCH_E2E_RECORDS", "20000"))
EFO_RECORDS = int(os.environ.get("BENCH_E2E_EFO_RECORDS", "4000"))


def image(n: int, version: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"customer#{n:08d}"},
        "sk": {"S": f"order#{n:06d}"},
        "status": {"S": "SHIPPED" if version else "PAID"},
        "total": {"N": f"{1234 + n % 1000}.{version}5"},
        "currency": {"S": "EUR"},
        "quantity": {"N": str(3 + version)},
        "gift": {"BOOL": bool(version)},
        "tags": {"SS": ["express", "fragile"]},
        "address": {
            "M": {
                "street": {"S": f"{n % 900 + 100} Main Street"},
                "city": {"S": "Springfield"},
                "zip": {"S": f"{n % 90000 + 10000}"},
            }
        },
        "lines": {
            "L": [
                {
                    "M": {
                        "sku": {"S": f"SKU-{n % 99991:05d}"},
                        "qty": {"N": "1"},
                        "price": {"N": "19.99"},
                    }
                },
                {
                    "M": {
                        "sku": {"S": f"SKU-{(n + 7) % 99991:05d}"},
                        "qty": {"N": "2"},
                        "price": {"N": "5.25"},
                    }
                },
            ]
        },
        "description": {
            "S": "A moderately long description of the order, long enough for a realistic "
            "record size: gift wrapped, leave with the neighbour if nobody answers the door"
        },
    }


def record(n: int) -> bytes:
    created = 1_790_000_000_000_000 + n
    return orjson.dumps(
        {
            "awsRegion": "us-east-1",
            "eventID": str(uuid.UUID(int=n)),
            "eventName": "MODIFY",
            "userIdentity": None,
            "recordFormat": "application/json",
            "tableName": "orders",
            "dynamodb": {
                "ApproximateCreationDateTime": created,
                "ApproximateCreationDateTimePrecision": "MICROSECOND",
                "Keys": {"pk": image(n, 1)["pk"], "sk": image(n, 1)["sk"]},
                "NewImage": image(n, 1),
                "OldImage": image(n, 0),
                "SizeBytes": 1100,
            },
            "eventSource": "aws:dynamodb",
        }
    )


def preload(kinesis: Any, stream: str, count: int) -> int:
    size = len(record(0))
    for start in range(0, count, 500):
        kinesis.put_records(
            StreamName=stream,
            Records=[
                {"Data": record(n), "PartitionKey": f"{n:08d}"}
                for n in range(start, min(start + 500, count))
            ],
        )
    return size


def settings_for(state: LocalStackState, stream: str, kinesis_url: str, mode: str) -> Settings:
    return Settings(
        application=f"bench-{mode}-{uuid.uuid4().hex[:6]}",
        stream={"name": stream, "mode": mode, "polling_interval_s": 0.2},
        aws={
            "endpoint_kinesis": kinesis_url,
            "endpoint_dynamodb": state.moto_url,
            "access_key_id": "000000000000",
            "secret_access_key": "local",
        },
        pipelines={"null": {"enabled": True}},
        telemetry={"emf": False, "health_port": None, "log_level": "error"},
        leases={"take_interval_s": 0.5, "heartbeat_interval_s": 1.0},
        checkpoint_interval_s=1.0,
    )


async def measure_service(settings: Settings, expected: int, timeout_s: float = 600) -> float:
    """CPU seconds per record from the first record read to the last."""
    worker = Worker(settings, until_idle_s=None)
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    activity = worker.state.activity
    assert activity is not None
    deadline = time.monotonic() + timeout_s
    started: float | None = None
    while activity.records < expected:
        if run.done():
            run.result()
            raise RuntimeError("the worker stopped early")
        if time.monotonic() > deadline:
            raise TimeoutError(f"read {activity.records} of {expected} records")
        if started is None and activity.records:
            started = time.process_time()
        await asyncio.sleep(0.005)
    cpu = time.process_time() - (started or time.process_time())
    stop.set()
    await run
    return cpu / expected


async def measure_peer(stream: str, kinesis_url: str, expected: int) -> float:
    from kinesis import Consumer, MemoryCheckPointer

    got = 0
    started: float | None = None
    async with Consumer(
        stream_name=stream,
        endpoint_url=kinesis_url,
        region_name="us-east-1",
        checkpointer=MemoryCheckPointer(name="bench"),
        sleep_time_no_records=0.2,
        max_queue_size=10_000,
    ) as consumer:
        while got < expected:
            async for _item in consumer:
                if started is None:
                    started = time.process_time()
                got += 1
                if got >= expected:
                    break
            else:
                await asyncio.sleep(0.05)
    return (time.process_time() - (started or time.process_time())) / expected


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "000000000000")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as work:
        stack = LocalStack(Path(work))
        state = stack.start()
        try:
            moto = AwsEndpoints(
                endpoint_urls={"kinesis": state.moto_url},
                access_key_id="000000000000",
                secret_access_key="local",
            )
            size = preload_stream(moto.client("kinesis"), "bench-polling", POLLING_RECORDS)
            print(f"e2e_record_bytes {size} bytes")
            results["polling"] = asyncio.run(
                measure_service(
                    settings_for(state, "bench-polling", state.moto_url, "polling"),
                    POLLING_RECORDS,
                )
            )
            results["peer"] = asyncio.run(
                measure_peer("bench-polling", state.moto_url, POLLING_RECORDS)
            )
            mock = state.endpoints()
            preload_stream(mock.client("kinesis"), "bench-efo", EFO_RECORDS)
            results["efo"] = asyncio.run(
                measure_service(
                    settings_for(state, "bench-efo", state.kinesis_url, "efo"), EFO_RECORDS
                )
            )
        finally:
            stack.stop()
    print(f"e2e_cpu_us_per_record_polling {results['polling'] * 1e6:.1f} us/record")
    print(f"e2e_cpu_us_per_record_efo {results['efo'] * 1e6:.1f} us/record")
    print(f"peer_async_kinesis_cpu_us_per_record {results['peer'] * 1e6:.1f} us/record")
    print(f"e2e_cpu_vs_async_kinesis {results['polling'] / results['peer']:.2f} ratio")


def preload_stream(kinesis: Any, stream: str, count: int) -> int:
    create_kinesis_stream(kinesis, stream, SHARDS)
    return preload(kinesis, stream, count)


if __name__ == "__main__":
    main()
