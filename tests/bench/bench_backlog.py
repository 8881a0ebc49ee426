"""Memory under backlog: one polling worker catching up on 100 shards, each far behind.

Run by `make bench`. A worker (`consumer run`, null pipeline, real lease table on moto) reads
a stream whose 100 shards each hold BENCH_BACKLOG_RECORDS (default 20,000) destination records
of ~1.7 KB, served by a synthetic Kinesis (tests/bench/backlog_kinesis.py: kinesis-mock cannot
hold 2 million records here). After BENCH_BACKLOG_SECONDS of reading (every shard then has
read-ahead full and is still far behind) the worker's peak resident memory (VmHWM) is read.
The same is done with one shard. Prints:
- `rss_mb_backlog_100_shards`: peak RSS of the 100-shard worker (target <= 1,024 MB);
- `rss_mb_backlog_1_shard`: the same with one shard;
- `rss_mb_per_shard`: (100 shards - 1 shard) / 99, under backlog;
- `backlog_records_read_per_s`: records served per second to the 100-shard worker.
BENCH_BACKLOG_PER_SHARD_BYTES overrides the per-shard read-ahead (default 8 MiB).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consumer.local.stack import LocalStack, LocalStackState
from tests.bench.backlog_kinesis import Backlog, BacklogServer
from tests.bench.bench_e2e import record as destination_record

RECORDS = int(os.environ.get("BENCH_BACKLOG_RECORDS", "20000"))
SECONDS = float(os.environ.get("BENCH_BACKLOG_SECONDS", "40"))
PER_SHARD_BYTES = os.environ.get("BENCH_BACKLOG_PER_SHARD_BYTES")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(state: LocalStackState, shards: int, work: Path) -> tuple[float, float]:
    backlog = Backlog(f"backlog{shards}", shards, RECORDS, destination_record)
    server = BacklogServer(backlog)
    server.start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONSUMER_")},
        "CONSUMER_APPLICATION": backlog.stream,
        "CONSUMER_STREAM__NAME": backlog.stream,
        "CONSUMER_STREAM__MODE": "polling",
        "CONSUMER_STREAM__POLLING_INTERVAL_S": "0.2",
        "CONSUMER_AWS__ENDPOINT_KINESIS": server.url,
        "CONSUMER_AWS__ENDPOINT_DYNAMODB": state.moto_url,
        "CONSUMER_AWS__ACCESS_KEY_ID": "000000000000",
        "CONSUMER_AWS__SECRET_ACCESS_KEY": "local",
        "CONSUMER_PIPELINES__NULL__ENABLED": "true",
        "CONSUMER_TELEMETRY__HEALTH_PORT": "0",
        "CONSUMER_TELEMETRY__EMF": "false",
        "CONSUMER_TELEMETRY__LOG_LEVEL": "error",
        "CONSUMER_LEASES__TAKE_INTERVAL_S": "0.5",
    }
    if PER_SHARD_BYTES:
        env["CONSUMER_STREAM__READ_AHEAD_BYTES_PER_SHARD"] = PER_SHARD_BYTES
    log = work / f"worker{shards}.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "consumer", "run"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while backlog.served == 0:  # startup (leases) is not what this measures
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start reading: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        started, first = time.monotonic(), backlog.served
        time.sleep(SECONDS)
        rate = (backlog.served - first) / (time.monotonic() - started)
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited: {log.read_text()[-2000:]}")
        return peak_rss_mb(worker.pid), rate
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=40)
        except subprocess.TimeoutExpired:
            worker.kill()
        server.stop()


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        stack = LocalStack(work / "stack")
        state = stack.start()
        try:
            many, rate = measure(state, 100, work)
            one, _ = measure(state, 1, work)
        finally:
            stack.stop()
    print(f"rss_mb_backlog_100_shards {many:.0f} MB")
    print(f"rss_mb_backlog_1_shard {one:.0f} MB")
    print(f"rss_mb_per_shard {(many - one) / 99:.2f} MB")
    print(f"backlog_records_read_per_s {rate:.0f} records/s")


if __name__ == "__main__":
    main()
