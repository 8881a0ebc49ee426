"""Scale: 200 shards shared by 4 worker processes with production lease timings.

Run by `make bench`. Prints:
- `startup_s_200_shards`: from starting the 4 workers until every lease is owned and every
  shard has been read and checkpointed (each shard holds one record, so a checkpoint past
  TRIM_HORIZON proves the shard is being read);
- `lease_table_writes_per_hour_200_shards`: writes to the lease table in steady state (counted
  by a proxy in front of moto's DynamoDB), extrapolated to an hour, and its ratio to KCL's
  renewal writes at that size (200 leases renewed every ~3.3 s: ~218,000/h);
- `rss_mb_per_shard_idle`: the workers' resident memory per owned shard, above a worker that owns
  one, with nothing to read (under backlog: `rss_mb_per_shard` of bench_backlog.py);
- `startup_cpu_s`, `startup_s_200_shards_one_worker`: CPU and wall time of ONE worker from its
  process start to holding all 200 leases (imports, settings, clients, lease table, takes).
The workers poll (1 s interval) with a null sink; kinesis-mock serves the stream.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consumer.local.sample_orders import create_kinesis_stream
from consumer.local.stack import LocalStack, LocalStackState
from tests.bench.bench_e2e import record as destination_record
from tests.chaos.proxy import OutageProxy, ProxyThread, ThrottlingProxy

SHARDS = int(os.environ.get("BENCH_SCALE_SHARDS", "200"))
WORKERS = 4
STEADY_S = float(os.environ.get("BENCH_SCALE_STEADY_S", "60"))
KCL_RENEWALS_PER_LEASE_HOUR = 3600 / 3.3


def environment(state: LocalStackState, app: str, stream: str, dynamodb_url: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONSUMER_")},
        "CONSUMER_APPLICATION": app,
        "CONSUMER_STREAM__NAME": stream,
        "CONSUMER_STREAM__MODE": "polling",
        "CONSUMER_STREAM__POLLING_INTERVAL_S": "1.0",
        "CONSUMER_AWS__ENDPOINT_KINESIS": state.kinesis_url,
        "CONSUMER_AWS__ENDPOINT_DYNAMODB": dynamodb_url,
        "CONSUMER_AWS__ACCESS_KEY_ID": "000000000000",
        "CONSUMER_AWS__SECRET_ACCESS_KEY": "local",
        "CONSUMER_PIPELINES__NULL__ENABLED": "true",
        "CONSUMER_TELEMETRY__HEALTH_PORT": "0",
        "CONSUMER_TELEMETRY__EMF": "false",
        "CONSUMER_TELEMETRY__LOG_LEVEL": "error",
        "CONSUMER_CHECKPOINT_INTERVAL_S": "1",
    }


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "consumer", "run"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_record_per_shard(kinesis: Any, stream: str) -> int:
    shards = []
    kwargs: dict[str, Any] = {"StreamName": stream}
    while True:
        page = kinesis.list_shards(**kwargs)
        shards.extend(page["Shards"])
        if not page.get("NextToken"):
            break
        kwargs = {"NextToken": page["NextToken"]}
    for start in range(0, len(shards), 500):
        kinesis.put_records(
            StreamName=stream,
            Records=[
                {
                    "Data": destination_record(index),
                    "PartitionKey": "p",
                    "ExplicitHashKey": shard["HashKeyRange"]["StartingHashKey"],
                }
                for index, shard in enumerate(shards[start : start + 500], start)
            ],
        )
    return len(shards)


def leases_read(dynamodb: Any, table: str) -> tuple[int, int]:
    """(leases owned, leases checkpointed past TRIM_HORIZON)."""
    try:
        items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    except dynamodb.exceptions.ResourceNotFoundException:
        return 0, 0
    leases = [i for i in items if i["leaseKey"]["S"].startswith("shardId")]
    owned = sum(1 for i in leases if i.get("leaseOwner", {}).get("S"))
    read = sum(1 for i in leases if i.get("checkpoint", {}).get("S") not in (None, "TRIM_HORIZON"))
    return owned, read


def cpu_s(pid: int) -> float:
    """User + system CPU of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_worker_startup(env: dict[str, str], dynamodb: Any, work_dir: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one worker from process start to all 200 leases held."""
    started = time.monotonic()
    worker = spawn(env, work_dir / "one.log")
    try:
        deadline = started + 600
        while leases_read(dynamodb, "scale-one-leases")[0] < SHARDS:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the single worker did not take every lease")
            time.sleep(0.1)
        return cpu_s(worker.pid), time.monotonic() - started
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=40)
        except subprocess.TimeoutExpired:
            worker.kill()


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        stack = LocalStack(work_dir / "stack")
        state = stack.start()
        proxy = ProxyThread(
            OutageProxy("127.0.0.1", state.moto_port), ThrottlingProxy(state.moto_url, seed=1)
        )
        workers: list[subprocess.Popen[bytes]] = []
        try:
            proxy.start()
            counted = f"http://127.0.0.1:{proxy.throttle.port}"
            endpoints = state.endpoints()
            kinesis, dynamodb = endpoints.client("kinesis"), endpoints.client("dynamodb")
            create_kinesis_stream(kinesis, "scale", SHARDS)
            one_record_per_shard(kinesis, "scale")
            create_kinesis_stream(kinesis, "single", 1)
            env = environment(state, "scale", "scale", counted)
            started = time.monotonic()
            workers = [spawn(env, work_dir / f"w{n}.log") for n in range(WORKERS)]
            deadline = started + 600
            while True:
                owned, read = leases_read(dynamodb, "scale-leases")
                if read >= SHARDS:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{owned} owned, {read} read of {SHARDS} after 600 s")
                time.sleep(0.5)
            startup_s = time.monotonic() - started
            time.sleep(10)  # let the last checkpoints and rebalancing settle
            before = proxy.throttle.writes
            time.sleep(STEADY_S)
            writes_per_hour = (proxy.throttle.writes - before) * 3600 / STEADY_S
            rss = [rss_mb(w.pid) for w in workers]
            single_env = environment(state, "single", "single", state.moto_url)
            baseline = spawn(single_env, work_dir / "single.log")
            workers.append(baseline)
            deadline = time.monotonic() + 120
            while leases_read(dynamodb, "single-leases")[0] < 1 and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(5)
            baseline_mb = rss_mb(baseline.pid)
            startup_cpu_s, startup_one_s = one_worker_startup(
                environment(state, "scale-one", "scale", state.moto_url), dynamodb, work_dir
            )
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                try:
                    worker.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    worker.kill()
            proxy.stop()
            stack.stop()
    per_worker = SHARDS / WORKERS
    per_shard = (sum(rss) / len(rss) - baseline_mb) / (per_worker - 1)
    kcl = SHARDS * KCL_RENEWALS_PER_LEASE_HOUR
    print(f"startup_s_200_shards {startup_s:.1f} s")
    print(f"lease_table_writes_per_hour_200_shards {writes_per_hour:.0f} writes/h")
    print(f"lease_writes_vs_kcl_200_shards {writes_per_hour / kcl:.3f} ratio")
    print(f"rss_mb_worker_{per_worker:.0f}_shards {sum(rss) / len(rss):.1f} MB")
    print(f"rss_mb_worker_1_shard {baseline_mb:.1f} MB")
    print(f"rss_mb_per_shard_idle {per_shard:.2f} MB")
    print(f"startup_cpu_s {startup_cpu_s:.2f} s")
    print(f"startup_s_200_shards_one_worker {startup_one_s:.1f} s")


if __name__ == "__main__":
    main()
