"""Benchmark: lease-table cost and failover time at 100 shards and 4 workers.

Starts its own local stack (moto server + kinesis-mock), a 100-shard stream, and 4
Coordinators with the *production* default intervals (LeaseSettings defaults). After they
converge it counts lease-table writes for a measurement window and extrapolates to an hour,
then aborts one coordinator (a crash: no release) and times the takeover of its leases.

Counted as lease-table writes: every billed write the coordinators make that is not a
checkpoint (heartbeats, takes, claims, handoffs, fences, lease creation and clean-up),
including failed conditional writes (DynamoDB bills those too). Checkpoint writes are printed
apart: they depend on how often the application checkpoints, and KCL's renewal figure
(100 leases renewed every ~3.3 s = ~109,000 writes/h) excludes them as well. The bench's shard
processors read nothing, so they never checkpoint.

Prints machine-readable lines: `<name> <value> <unit>`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import structlog

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT))

from checkpoints import (  # noqa: E402 (after the path set-up, for `python tests/bench/...`)
    Coordinator,
    LeaseHandle,
    LeaseSettings,
    LeaseTable,
)
from consumer.aws import AwsEndpoints  # noqa: E402 (after the path set-up, as above)
from consumer.aws.shards import KinesisShardLister  # noqa: E402 (as above)
from consumer.local.stack import LocalStack  # noqa: E402 (after the path set-up, as above)

SHARDS = 100
WORKERS = 4
# KCL renews every lease every ~3.3 s (failover time / 3): 100 x 3600 / 3.3 = ~109,000.
KCL_WRITES_PER_HOUR = 109_000
MEASURE_S = float(os.environ.get("BENCH_LEASES_MEASURE_S", "40"))


async def idle_processor(handle: LeaseHandle) -> None:
    await handle.stop_requested.wait()


def create_stream(endpoints: AwsEndpoints, name: str) -> None:
    kinesis = endpoints.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=SHARDS)
    for _ in range(600):
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.1)
    raise RuntimeError("the benchmark stream did not become ACTIVE")


async def wait_until(condition: object, timeout_s: float, what: str) -> float:
    assert callable(condition)
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"benchmark: {what} did not happen within {timeout_s} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def run(endpoints: AwsEndpoints) -> None:
    stream = "bench-leases"
    create_stream(endpoints, stream)
    settings = LeaseSettings(application_name="bench-leases", stream_name=stream)
    async with AsyncExitStack() as stack:
        coordinators: list[Coordinator] = []
        started = time.monotonic()
        for i in range(WORKERS):
            table = await stack.enter_async_context(
                LeaseTable.open(endpoints, settings.lease_table)
            )
            kinesis = await stack.enter_async_context(endpoints.aio_client("kinesis"))
            lister = KinesisShardLister(kinesis, stream)
            coordinator = Coordinator(
                settings, table, lister, idle_processor, worker_id=f"bench-worker-{i}"
            )
            await coordinator.start()
            stack.push_async_callback(coordinator.abort)
            coordinators.append(coordinator)

        def counts() -> list[int]:
            return sorted(len(c.held_shards()) for c in coordinators)

        target = [SHARDS // WORKERS] * WORKERS
        await wait_until(lambda: counts() == target, 120, "convergence")
        converged_s = time.monotonic() - started
        startup_writes = sum(c.table_stats.coordination_writes for c in coordinators)

        before = [c.table_stats.coordination_writes for c in coordinators]
        before_cp = [c.table_stats.checkpoint_writes for c in coordinators]
        before_ru = [c.table_stats.estimated_read_units for c in coordinators]
        before_retries = [c.table_stats.retry.total_retries for c in coordinators]
        window_start = time.monotonic()
        await asyncio.sleep(MEASURE_S)
        window = time.monotonic() - window_start
        stable = counts() == target
        writes = sum(c.table_stats.coordination_writes for c in coordinators) - sum(before)
        checkpoint_writes = sum(c.table_stats.checkpoint_writes for c in coordinators) - sum(
            before_cp
        )
        read_units = sum(c.table_stats.estimated_read_units for c in coordinators) - sum(before_ru)
        retries = sum(c.table_stats.retry.total_retries for c in coordinators) - sum(before_retries)
        per_hour = writes * 3600 / window

        victim, *survivors = coordinators
        orphans = victim.held_shards()
        await victim.abort()

        def taken_over() -> bool:
            held: set[str] = set()
            for survivor in survivors:
                held |= survivor.held_shards()
            return orphans <= held

        failover_s = await wait_until(taken_over, 120, "failover")

    print(f"lease_table_writes_per_hour {per_hour:.0f} writes/h")
    print(f"lease_writes_vs_kcl {per_hour / KCL_WRITES_PER_HOUR:.4f} ratio")
    print(f"lease_kcl_writes_per_hour {KCL_WRITES_PER_HOUR:.0f} writes/h")
    print(f"lease_checkpoint_writes_per_hour {checkpoint_writes * 3600 / window:.0f} writes/h")
    print(
        f"lease_table_read_units_per_hour {read_units * 3600 / window:.0f} RRU/h"
        "  (estimated from item sizes, strongly consistent scans)"
    )
    print(f"lease_table_retries_in_window {retries} retries")
    print(f"lease_steady_state_stable {int(stable)} bool")
    print(f"lease_convergence_s {converged_s:.1f} s")
    print(f"lease_startup_writes {startup_writes} writes")
    print(f"lease_failover_s {failover_s:.1f} s")
    print(
        f"lease_failover_bound_s {settings.failover_s + settings.take_interval_s:.1f} s"
        "  (failover_s + take_interval_s)"
    )
    print(f"lease_bench_shards {SHARDS} shards")
    print(f"lease_bench_workers {WORKERS} workers")
    print(f"lease_bench_window_s {window:.1f} s")


def main() -> int:
    # Only warnings: the result lines must stand out (and stay machine-readable).
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    with tempfile.TemporaryDirectory(prefix="bench-leases-") as directory:
        stack = LocalStack(Path(directory))
        try:
            state = stack.start()
            asyncio.run(run(state.endpoints()))
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
