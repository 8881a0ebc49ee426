"""The consumer's own added latency on a live stream: read off the socket to applied per sink.

Run by `make bench`. A synthetic Kinesis (tests/bench/backlog_kinesis.py) lets records arrive at
BENCH_LATENCY_RATE (default 1,000) per second per shard on 4 shards for BENCH_LATENCY_SECONDS
(default 20); the worker polls it (real lease table on moto, checkpoints every 10 s as in
production) in its own process. Each batch is stamped when the reader hands it over, and each
sink's apply is timed against that stamp (consumer/pipeline/added_latency.py). Prints, per
sink, `consumer_added_ms_p50_<run>_<sink>` and `consumer_added_ms_p99_<run>_<sink>`, after a
warm-up of the first 20 % of the records (start-up catch-up is not the steady state):
- with the null sink (the consumer alone; target p99 <= 5 ms);
- with replication (moto) and search (the OpenSearch protocol double) (target p99 <= 20 ms),
  at BENCH_LATENCY_SINKS_RATE (default 50) per second per shard.
moto and the double are local stand-ins, single-threaded Python: their own service time is
inside the second figure, which a real DynamoDB table and OpenSearch domain would not match.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consumer.aws import AwsEndpoints
from consumer.local.stack import LocalStack, LocalStackState
from tests.bench.backlog_kinesis import Backlog, BacklogServer
from tests.bench.bench_e2e import CHILD
from tests.bench.bench_e2e import record as destination_record
from tests.bench.bench_sinks import create_bench_replica
from tests.opensearch_double.server import OpenSearchDouble

BREAKDOWN_CHILD = Path(__file__).with_name("latency_breakdown.py")

RATE = float(os.environ.get("BENCH_LATENCY_RATE", "1000"))
# moto serves a few hundred PutItem/s on this machine: at 4,000 changes/s the replica (not the
# consumer) would be the bottleneck, so the sinks run is paced to what the stand-ins sustain.
SINKS_RATE = float(os.environ.get("BENCH_LATENCY_SINKS_RATE", "50"))
SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "20"))
SHARDS = 4
# Which runs (comma-separated: null, sinks); profiling one is quicker than both.
RUNS = os.environ.get("BENCH_LATENCY_RUNS", "null,sinks").split(",")
# With BENCH_LATENCY_BREAKDOWN=1 the child times each stage (tests/bench/latency_breakdown.py).
BREAKDOWN = os.environ.get("BENCH_LATENCY_BREAKDOWN") == "1"


def run(
    state: LocalStackState, label: str, rate: float, sinks: dict[str, object]
) -> dict[str, float]:
    per_shard = int(rate * SECONDS)
    server = BacklogServer(Backlog(f"live-{label}", SHARDS, per_shard, destination_record, rate))
    server.start()
    try:
        env = {
            **os.environ,
            "BENCH_WARMUP_RECORDS": str(int(per_shard * SHARDS * 0.2)),
            "BENCH_SINKS": json.dumps({"checkpoint_interval_s": 10.0, **sinks}),
        }
        done = subprocess.run(
            [
                sys.executable,
                str(BREAKDOWN_CHILD if BREAKDOWN else CHILD),
                "service",
                f"live-{label}",
                server.url,
                state.moto_url,
                str(per_shard * SHARDS),
                "polling",
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
            env=env,
        )
    finally:
        server.stop()
    figures: dict[str, float] = {}
    for line in done.stdout.splitlines():
        if BREAKDOWN and not line.startswith(("added_ms ", "cpu_us")):
            print(f"{label}: {line}", file=sys.stderr)
        if line.startswith("added_ms "):
            _, sink, p50, p99 = line.split()
            figures[f"consumer_added_ms_p50_{label}_{sink}"] = float(p50)
            figures[f"consumer_added_ms_p99_{label}_{sink}"] = float(p99)
    if not figures:
        raise RuntimeError(f"{label} failed (exit {done.returncode}): {done.stderr[-3000:]}")
    return figures


def main() -> None:
    with tempfile.TemporaryDirectory() as work, OpenSearchDouble() as search:
        stack = LocalStack(Path(work) / "stack")
        state = stack.start()
        try:
            moto = AwsEndpoints(
                endpoint_urls={name: state.moto_url for name in ("dynamodb", "sqs")},
                access_key_id="000000000000",
                secret_access_key="local",
            )
            queue = moto.client("sqs").create_queue(QueueName="bench-dlq")["QueueUrl"]

            create_bench_replica(moto)
            results: dict[str, float] = {}
            if "null" in RUNS:
                results |= run(state, "null", RATE, {})
            if "sinks" in RUNS:
                results |= run(
                    state,
                    "sinks",
                    SINKS_RATE,
                    {
                        "aws": {
                            "endpoint_dynamodb": state.moto_url,
                            "endpoint_sqs": state.moto_url,
                            "access_key_id": "000000000000",
                            "secret_access_key": "local",
                        },
                        "dlq": {"queue_url": queue},
                        "pipelines": {
                            "replication": {"enabled": True, "table": "bench-replica"},
                            "search": {"enabled": True, "endpoint": search.url, "auth": "none"},
                        },
                    },
                )
        finally:
            stack.stop()
    print(f"consumer_added_rate_null {RATE:.0f} records/s/shard")
    print(f"consumer_added_rate_sinks {SINKS_RATE:.0f} records/s/shard")
    for name, value in sorted(results.items()):
        print(f"{name} {value:.2f} ms")


if __name__ == "__main__":
    main()
