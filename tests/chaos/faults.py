"""LOCAL ONLY: what the chaos run does to the service, and when.

- `plan_faults`: a seeded schedule of faults (seconds from the start of the chaos phase).
- `WorkerPool`: `consumer run` processes, each with its own worker id and log file; kill -9,
  SIGTERM, SIGSTOP/SIGCONT, replacements, workers started with a wrong destination, and who was
  stopped how (for the checks).
- `split_shard` / `merge_shards`: resharding on kinesis-mock.
- `wait_for_takeover`: seconds until every shard a dead worker held has another owner.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from consumer.aws import AwsEndpoints
from consumer.aws.shards import ApiShard, is_open, kinesis_shards, stream_ident

FaultKind = Literal[
    "kill9",
    "sigterm",
    "sigstop",  # stopped past the failover time, then resumed
    "stall",  # a blocking sleep inside a sink write, longer than the lease's local expiry
    "misconfigured",  # a worker whose replica table does not exist: one line, no lease
    "split",
    "merge",
    "outage",
    "poison_record",
    "poison_item",
    "mixed_batch",  # good changes and a poison change of one key in one PutRecords
]


@dataclass(frozen=True)
class Fault:
    at_s: float
    kind: FaultKind
    duration_s: float = 0.0  # outages only


@dataclass(frozen=True)
class ChaosPlan:
    duration_s: float
    faults: tuple[Fault, ...]
    poison_records: int
    poison_items: int
    mixed_batches: int = 0

    @property
    def poison_total(self) -> int:
        return self.poison_records + self.poison_items + self.mixed_batches


def plan_faults(rng: random.Random, short: bool) -> ChaosPlan:
    """Short: ~65 s, one of each fault. Full: ~6 minutes, repeated rounds of faults.

    A SIGTERM is never scheduled during (or just before) a sink outage: the graceful handoff
    must be able to finish its in-flight batches, else it is not the planned move it claims.
    Kills and SIGSTOPs wait for an outage to end (their takeover time is measured until the
    replica is written again). Three mixed batches put the poison oldest, middle and newest.
    """
    poison_records, poison_items, mixed_batches = 3, 2, 3
    if short:
        duration = 65.0
        faults = [
            Fault(rng.uniform(4, 6), "misconfigured"),
            Fault(rng.uniform(8, 12), "kill9"),
            Fault(rng.uniform(15, 19), "split"),
            Fault(rng.uniform(23, 27), "sigterm"),
            Fault(rng.uniform(28, 30), "stall"),
            Fault(rng.uniform(32, 35), "outage", 10.0),
            Fault(rng.uniform(47, 49), "merge"),
            Fault(rng.uniform(52, 54), "sigstop"),
        ]
        window = (3.0, 50.0)
    else:
        duration = 300.0
        faults = [Fault(rng.uniform(3, 5), "misconfigured")]
        kinds: list[FaultKind] = [
            "kill9",
            "split",
            "sigstop",
            "sigterm",
            "outage",
            "merge",
            "stall",
            "kill9",
        ]
        slot = duration / (2 * len(kinds))
        start = 6.0
        for round_ in range(2):
            for kind in kinds:
                at = start + rng.uniform(0, slot * 0.3)
                outage = rng.uniform(10, 30) if kind == "outage" else 0.0
                faults.append(Fault(at, kind, outage))
                start += max(slot, outage + 8.0)
            if round_ == 0:
                kinds = [
                    "sigterm",
                    "stall",
                    "kill9",
                    "outage",
                    "split",
                    "sigstop",
                    "kill9",
                    "merge",
                ]
        duration = max(duration, start + 10.0)
        window = (3.0, duration - 20.0)
    for _ in range(poison_records):
        faults.append(Fault(rng.uniform(*window), "poison_record"))
    for _ in range(poison_items):
        faults.append(Fault(rng.uniform(*window), "poison_item"))
    for _ in range(mixed_batches):
        faults.append(Fault(rng.uniform(*window), "mixed_batch"))
    faults.sort(key=lambda fault: fault.at_s)
    return ChaosPlan(duration, tuple(faults), poison_records, poison_items, mixed_batches)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the chaos run dies (Linux), own group."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the run still stops every worker it started in `finally`
    os.setsid()


@dataclass
class WorkerProcess:
    worker_id: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started: float
    stopped_by: Literal["kill9", "sigterm", "end"] | None = None
    stopped_at: float | None = None
    misconfigured: bool = False  # started with a wrong destination: must exit, no lease
    replaced: bool = False  # exited by itself and was restarted (as ECS restarts a task)


@dataclass
class WorkerPool:
    """The `consumer run` processes of the chaos run."""

    environment: Callable[[str], dict[str, str]]
    log_dir: Path
    workers: list[WorkerProcess] = field(default_factory=list)
    _next: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def spawn(self, overrides: dict[str, str] | None = None) -> WorkerProcess:
        """`overrides`: settings that make this worker misconfigured (it must not start)."""
        with self._lock:  # the restart thread spawns too
            worker_id = f"chaos-w{self._next}"
            self._next += 1
        log_path = self.log_dir / f"{worker_id}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "consumer", "run"],
                env={**os.environ, **self.environment(worker_id), **(overrides or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        worker = WorkerProcess(
            worker_id, process, log_path, time.time(), misconfigured=bool(overrides)
        )
        with self._lock:
            self.workers.append(worker)
        return worker

    def restart_exited(self) -> list[str]:
        """Like ECS for a task that stopped by itself: a worker that exited without being
        stopped (a start-up check that failed during a sink outage, say) gets a replacement."""
        notes = []
        with self._lock:
            exited = [
                w
                for w in self.workers
                if w.stopped_by is None
                and not w.misconfigured
                and not w.replaced
                and w.process.poll() is not None
            ]
            for worker in exited:
                worker.replaced = True
        for worker in exited:
            replacement = self.spawn()
            notes.append(
                f"{worker.worker_id} exited by itself (code {worker.process.returncode}); "
                f"restarted as {replacement.worker_id}"
            )
        return notes

    def alive(self) -> list[WorkerProcess]:
        return [
            w
            for w in self.workers
            if w.stopped_by is None and not w.misconfigured and w.process.poll() is None
        ]

    def by_pid(self) -> dict[int, WorkerProcess]:
        return {worker.process.pid: worker for worker in self.workers}

    def kill9(self, worker: WorkerProcess) -> None:
        worker.stopped_by, worker.stopped_at = "kill9", time.time()
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait()

    def sigstop(self, worker: WorkerProcess) -> None:
        worker.process.send_signal(signal.SIGSTOP)

    def sigcont(self, worker: WorkerProcess) -> None:
        worker.process.send_signal(signal.SIGCONT)

    def sigterm(self, worker: WorkerProcess) -> None:
        worker.stopped_by, worker.stopped_at = "sigterm", time.time()
        worker.process.send_signal(signal.SIGTERM)

    def stop_all(self, timeout_s: float) -> list[str]:
        """SIGTERM every live worker, wait, then kill what is left; returns exit problems."""
        problems: list[str] = []
        for worker in self.workers:
            code = worker.process.poll()
            if code is not None and worker.stopped_by is None and not worker.misconfigured:
                problems.append(f"{worker.worker_id} exited by itself with code {code}")
            if code is None and worker.stopped_by is None:
                worker.stopped_by, worker.stopped_at = "end", time.time()
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for worker in self.workers:
            try:
                code = worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
                problems.append(f"{worker.worker_id} did not stop in {timeout_s:.0f} s")
                continue
            if worker.stopped_by in ("sigterm", "end") and code != 0:
                problems.append(f"{worker.worker_id} exited {code} after SIGTERM")
        return problems


def _wait_active(kinesis: Any, stream: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = kinesis.describe_stream_summary(StreamName=stream)
        if status["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.2)
    raise TimeoutError(f"stream {stream} did not become ACTIVE in {timeout_s:.0f} s")


def stream_shards(endpoints: AwsEndpoints, stream: str) -> list[ApiShard]:
    """Every shard of the Kinesis stream, closed ones included (blocking)."""

    async def listing() -> list[ApiShard]:
        async with endpoints.aio_client("kinesis") as kinesis:
            return await kinesis_shards(kinesis, stream_ident(stream))

    return asyncio.run(listing())


def _open_shards(endpoints: AwsEndpoints, stream: str) -> list[ApiShard]:
    open_ = [shard for shard in stream_shards(endpoints, stream) if is_open(shard)]
    return sorted(open_, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))


def split_shard(endpoints: AwsEndpoints, stream: str, rng: random.Random) -> str:
    kinesis = endpoints.client("kinesis")
    _wait_active(kinesis, stream)
    shard = rng.choice(_open_shards(endpoints, stream))
    low = int(shard["HashKeyRange"]["StartingHashKey"])
    high = int(shard["HashKeyRange"]["EndingHashKey"])
    kinesis.split_shard(
        StreamName=stream,
        ShardToSplit=shard["ShardId"],
        NewStartingHashKey=str((low + high) // 2 + 1),
    )
    _wait_active(kinesis, stream)
    return f"split {shard['ShardId']}"


def merge_shards(endpoints: AwsEndpoints, stream: str, rng: random.Random) -> str:
    kinesis = endpoints.client("kinesis")
    _wait_active(kinesis, stream)
    shards = _open_shards(endpoints, stream)
    pairs = [
        (a, b)
        for a, b in itertools.pairwise(shards)
        if int(a["HashKeyRange"]["EndingHashKey"]) + 1 == int(b["HashKeyRange"]["StartingHashKey"])
    ]
    if not pairs:
        return "merge skipped (one open shard)"
    first, second = rng.choice(pairs)
    kinesis.merge_shards(
        StreamName=stream,
        ShardToMerge=first["ShardId"],
        AdjacentShardToMerge=second["ShardId"],
    )
    _wait_active(kinesis, stream)
    return f"merge {first['ShardId']}+{second['ShardId']}"


def wait_for_takeover(
    leases: Callable[[], list[dict[str, Any]]], dead_owner: str, since: float, timeout_s: float
) -> float | None:
    """Seconds from `since` (monotonic, the kill) until no unfinished shard is still leased
    to `dead_owner` (None: timed out). A shard checkpointed at SHARD_END needs no new owner.
    """
    start = since
    held = {
        item["leaseKey"]["S"]
        for item in leases()
        if item.get("leaseOwner", {}).get("S") == dead_owner
        and item.get("checkpoint", {}).get("S") != "SHARD_END"
    }
    while time.monotonic() - start < timeout_s:
        still = [
            item
            for item in leases()
            if item["leaseKey"]["S"] in held
            and item.get("leaseOwner", {}).get("S") in (dead_owner, None)
            and item.get("checkpoint", {}).get("S") != "SHARD_END"
        ]
        if not still:
            return time.monotonic() - start
        time.sleep(0.2)
    return None
