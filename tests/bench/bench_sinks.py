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
import pstats
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consumer.aws import AwsEndpoints
from consumer.local.stack import LocalStack, LocalStackState
from consumer.pipeline.replication import create_replica_table
from tests.bench.bench_e2e import CHILD, preload_stream
from tests.opensearch_double.server import OpenSearchDouble

RECORDS = int(os.environ.get("BENCH_SINKS_RECORDS", "20000"))
ROUNDS = int(os.environ.get("BENCH_SINKS_ROUNDS", "2"))
# A directory: also profile one run of each configuration (cProfile, `<name>.prof` there) and
# measure each sink alone, to see where the time goes.
PROFILE = os.environ.get("BENCH_SINKS_PROFILE", "")
# Which configurations to run each round (null, all, local): all three by default.
CONFIGS = [name for name in os.environ.get("BENCH_SINKS_CONFIGS", "null,all,local").split(",")]

# Settings of one run, with fresh destinations: (search "opensearch"|"local", only pipeline).
FreshSettings = Callable[[str, str | None], dict[str, object]]


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


def run(
    state: LocalStackState, stream: str, sinks: dict[str, object], profile: Path | None = None
) -> float:
    """CPU µs per record of one consumer process; with `profile`, under cProfile (stats to
    that file; the figure is then inflated by the profiler)."""
    env = {**os.environ, "BENCH_SINKS": json.dumps(sinks)}
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    done = subprocess.run(
        [
            sys.executable,
            *profiler,
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


def profile_runs(state: LocalStackState, fresh: FreshSettings, directory: Path) -> None:
    """Each sink alone (no profiler), then every sink under cProfile; prints the profiles'
    top functions by own time."""
    directory.mkdir(parents=True, exist_ok=True)
    alone = {
        "audit": fresh("opensearch", "audit"),
        "replication": fresh("opensearch", "replication"),
        "search_opensearch": fresh("opensearch", "search"),
        "search_local_index": fresh("local", "search"),
    }
    for name, settings in alone.items():
        cpu = run(state, "bench-sinks", settings)
        print(f"e2e_cpu_us_per_record_only_{name} {cpu:.1f} us/record")
    for name, settings in (("all", fresh("opensearch", None)), ("local", fresh("local", None))):
        stats_file = directory / f"{name}.prof"
        run(state, "bench-sinks", settings, profile=stats_file)
        stats = pstats.Stats(str(stats_file))
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats(60)


def main() -> None:
    with tempfile.TemporaryDirectory() as work, OpenSearchDouble() as double:
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

            aws = {
                "endpoint_kinesis": state.moto_url,
                "endpoint_dynamodb": state.moto_url,
                "endpoint_s3": state.moto_url,
                "endpoint_sqs": state.moto_url,
                "access_key_id": "000000000000",
                "secret_access_key": "local",
            }
            runs = 0

            def fresh(search_to: str, only: str | None = None) -> dict[str, object]:
                """Settings with empty destinations: every run writes new items (a replica
                table, index and audit prefix already holding them would measure the
                duplicate path instead). `only` keeps that one pipeline."""
                nonlocal runs
                runs += 1
                table = f"bench-replica-{runs}"
                create_bench_replica(moto, table)
                search: dict[str, object] = (
                    {"enabled": True, "endpoint": double.url, "auth": "none"}
                    | {"index": f"bench-{runs}"}
                    if search_to == "opensearch"
                    else {"enabled": True, "local_path": str(Path(work) / f"index-{runs}")}
                )
                pipelines: dict[str, dict[str, object]] = {
                    "audit": {"enabled": True, "bucket": "bench-audit", "prefix": f"run-{runs}/"},
                    "replication": {"enabled": True, "table": table},
                    "search": search,
                }
                if only is not None:
                    pipelines = {only: pipelines[only]}
                return {"aws": aws, "dlq": {"queue_url": queue}, "pipelines": pipelines}

            results: dict[str, list[float]] = {name: [] for name in CONFIGS}
            settings_of: dict[str, Callable[[], dict[str, object]]] = {
                "null": dict,
                "all": lambda: fresh("opensearch", None),
                "local": lambda: fresh("local", None),
            }
            for _ in range(ROUNDS):
                for name in CONFIGS:
                    cpu = run(state, "bench-sinks", settings_of[name]())
                    results[name].append(cpu)
                    print(f"e2e_sinks_run {name} {cpu:.1f} us/record", flush=True)
            if PROFILE:
                profile_runs(state, fresh, Path(PROFILE))
        finally:
            stack.stop()
    print(f"e2e_sinks_records {RECORDS} records")
    names = {
        "null": "null_sink",
        "all": "all_sinks",
        "local": "all_sinks_local_index",
    }
    for name, values in results.items():
        print(f"e2e_cpu_us_per_record_{names[name]} {statistics.median(values):.1f} us/record")


if __name__ == "__main__":
    main()
