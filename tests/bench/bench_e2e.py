"""End to end, measured fairly: the service, async-kinesis and a bare aiobotocore loop.

Run by `make bench`. N (BENCH_E2E_RECORDS, default 100,000) destination records (MODIFY, both
images, ~1.7 KB) are preloaded over 4 shards of moto's Kinesis. Each consumer then reads the
whole stream alone, in its own process (tests/bench/e2e_consumers.py), and its CPU is counted
from building it to the N-th distinct eventID:
- the service: the worker with its real lease table on moto, polling;
- async-kinesis 3 with its library defaults and its in-memory checkpointer;
- a raw aiobotocore GetRecords + `json.loads` loop (no leases, no checkpoints).
This is repeated BENCH_E2E_ROUNDS times (default 3), the order rotating each round; the
ratios are the median of the per-round ratios (the machines are shared and noisy), and the
machine's 1-minute load average is printed beside them. The emulators' CPU is not counted.
The service is also measured once in EFO mode on kinesis-mock (BENCH_E2E_EFO_RECORDS, 4,000).

Prints `e2e_cpu_us_per_record_polling`, `e2e_cpu_us_per_record_efo`,
`peer_async_kinesis_cpu_us_per_record`, `raw_loop_cpu_us_per_record`,
`e2e_cpu_vs_async_kinesis` and `e2e_cpu_vs_raw_loop`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import orjson

from consumer.aws import AwsEndpoints
from consumer.local.sample_orders import create_kinesis_stream
from consumer.local.stack import LocalStack

SHARDS = 4
POLLING_RECORDS = int(os.environ.get("BENCH_E2E_RECORDS", "100000"))
ROUNDS = int(os.environ.get("BENCH_E2E_ROUNDS", "3"))
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


CONSUMERS = ("service", "peer", "raw")
CHILD = Path(__file__).with_name("e2e_consumers.py")


def run_child(which: str, stream: str, kinesis: str, dynamodb: str, n: int, mode: str) -> float:
    """CPU µs per record of one consumer, run alone in its own process."""
    done = subprocess.run(
        [sys.executable, str(CHILD), which, stream, kinesis, dynamodb, str(n), mode],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith("cpu_us_per_record "):
            return float(line.split()[1])
    raise RuntimeError(f"{which} failed (exit {done.returncode}): {done.stderr[-3000:]}")


def main() -> None:
    per_round: dict[str, list[float]] = {name: [] for name in CONSUMERS}
    loads: list[float] = []
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
            for round_index in range(ROUNDS):
                # Rotate the order: a consumer that always ran first or last would meet a
                # systematically different machine.
                order = CONSUMERS[round_index % 3 :] + CONSUMERS[: round_index % 3]
                for which in order:
                    loads.append(os.getloadavg()[0])
                    per_round[which].append(
                        run_child(
                            which,
                            "bench-polling",
                            state.moto_url,
                            state.moto_url,
                            POLLING_RECORDS,
                            "polling",
                        )
                    )
            mock = state.endpoints()
            preload_stream(mock.client("kinesis"), "bench-efo", EFO_RECORDS)
            efo = run_child(
                "service", "bench-efo", state.kinesis_url, state.moto_url, EFO_RECORDS, "efo"
            )
        finally:
            stack.stop()
    service, peer, raw = (statistics.median(per_round[name]) for name in CONSUMERS)
    vs_peer = statistics.median(
        s / p for s, p in zip(per_round["service"], per_round["peer"], strict=True)
    )
    vs_raw = statistics.median(
        s / r for s, r in zip(per_round["service"], per_round["raw"], strict=True)
    )
    print(f"e2e_records {POLLING_RECORDS} records")
    print(f"e2e_rounds {ROUNDS} rounds")
    print(f"e2e_machine_load_1m {statistics.median(loads):.2f} load")
    print(f"e2e_cpu_us_per_record_polling {service:.1f} us/record")
    print(f"e2e_cpu_us_per_record_efo {efo:.1f} us/record")
    print(f"peer_async_kinesis_cpu_us_per_record {peer:.1f} us/record")
    print(f"raw_loop_cpu_us_per_record {raw:.1f} us/record")
    print(f"e2e_cpu_vs_async_kinesis {vs_peer:.2f} ratio")
    print(f"e2e_cpu_vs_raw_loop {vs_raw:.2f} ratio")


def preload_stream(kinesis: Any, stream: str, count: int) -> int:
    create_kinesis_stream(kinesis, stream, SHARDS)
    return preload(kinesis, stream, count)


if __name__ == "__main__":
    main()
