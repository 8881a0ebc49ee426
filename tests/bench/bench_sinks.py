"""The real sinks' cost: CPU of the consumer process per record with every pipeline on.

Run by `make bench`. N (BENCH_SINKS_RECORDS, default 20,000) destination records (~1.7 KB,
MODIFY with both images) over 4 shards of moto's Kinesis are read by the worker (polling, real
lease table) in its own process, with:
- audit to S3 (moto), search to the OpenSearch protocol double, replication to a moto table:
  `e2e_cpu_us_per_record_all_sinks`;
- the same with search to the embedded local index: `e2e_cpu_us_per_record_all_sinks_local_index`;
- the null sink, same records: `e2e_cpu_us_per_record_null_sink` (the consumer's own share).
CPU is the consumer process's only (the emulators and the double run elsewhere), from building
the worker to the N-th distinct eventID, median of BENCH_SINKS_ROUNDS (default 2) runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consumer.aws import AwsEndpoints
from consumer.local.stack import LocalStack, LocalStackState
from consumer.pipeline.replication import create_replica_table
from tests.bench.bench_e2e import CHILD, preload_stream
from tests.opensearch_double.server import OpenSearchDouble

RECORDS = int(os.environ.get("BENCH_SINKS_RECORDS", "20000"))
ROUNDS = int(os.environ.get("BENCH_SINKS_ROUNDS", "2"))


def create_bench_replica(endpoints: AwsEndpoints, table: str = "bench-replica") -> None:
    """The replica table for the benchmark records' keys (pk HASH, sk RANGE)."""

    async def create() -> None:
        async with endpoints.aio_client("dynamodb") as client:
            await create_replica_table(
                client,
                table,
                [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
            )

    asyncio.run(create())


def run(state: LocalStackState, stream: str, sinks: dict[str, object]) -> float:
    env = {**os.environ, "BENCH_SINKS": json.dumps(sinks)}
    done = subprocess.run(
        [
            sys.executable,
            str(CHILD),
            "service",
            stream,
            state.moto_url,
            state.moto_url,
            str(RECORDS),
            "polling",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env=env,
    )
    for line in done.stdout.splitlines():
        if line.startswith("cpu_us_per_record "):
            return float(line.split()[1])
    raise RuntimeError(f"the service failed (exit {done.returncode}): {done.stderr[-3000:]}")


def main() -> None:
    with tempfile.TemporaryDirectory() as work, OpenSearchDouble() as search:
        stack = LocalStack(Path(work) / "stack")
        state = stack.start()
        try:
            moto = AwsEndpoints(
                endpoint_urls={
                    name: state.moto_url for name in ("kinesis", "dynamodb", "s3", "sqs")
                },
                access_key_id="000000000000",
                secret_access_key="local",
            )
            preload_stream(moto.client("kinesis"), "bench-sinks", RECORDS)
            moto.client("s3").create_bucket(Bucket="bench-audit")
            queue = moto.client("sqs").create_queue(QueueName="bench-dlq")["QueueUrl"]

            create_bench_replica(moto)
            common = {
                "audit": {"enabled": True, "bucket": "bench-audit"},
                "replication": {"enabled": True, "table": "bench-replica"},
            }
            aws = {
                "endpoint_kinesis": state.moto_url,
                "endpoint_dynamodb": state.moto_url,
                "endpoint_s3": state.moto_url,
                "endpoint_sqs": state.moto_url,
                "access_key_id": "000000000000",
                "secret_access_key": "local",
            }
            opensearch = {
                "aws": aws,
                "dlq": {"queue_url": queue},
                "pipelines": {
                    **common,
                    "search": {"enabled": True, "endpoint": search.url, "auth": "none"},
                },
            }
            local = {
                "aws": aws,
                "dlq": {"queue_url": queue},
                "pipelines": {
                    **common,
                    "search": {"enabled": True, "local_path": str(Path(work) / "index")},
                },
            }
            results: dict[str, list[float]] = {"all": [], "local": [], "null": []}
            for _ in range(ROUNDS):
                results["null"].append(run(state, "bench-sinks", {}))
                results["all"].append(run(state, "bench-sinks", opensearch))
                results["local"].append(run(state, "bench-sinks", local))
        finally:
            stack.stop()
    print(f"e2e_sinks_records {RECORDS} records")
    print(f"e2e_cpu_us_per_record_null_sink {statistics.median(results['null']):.1f} us/record")
    print(f"e2e_cpu_us_per_record_all_sinks {statistics.median(results['all']):.1f} us/record")
    print(
        "e2e_cpu_us_per_record_all_sinks_local_index "
        f"{statistics.median(results['local']):.1f} us/record"
    )


if __name__ == "__main__":
    main()
