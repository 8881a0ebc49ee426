"""Acceptance: several worker *processes* share a stream on the local stack.

Each worker is `test_leases_worker_process.py` run as a script: a Coordinator with a toy
processor that polls GetRecords and appends every record it processes to a file. The tests
kill workers with SIGKILL and SIGTERM and then read the lease table and those files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from consumer.aws import AwsEndpoints
from consumer.local.stack import LocalStackState

pytestmark = pytest.mark.integration

WORKER_SCRIPT = Path(__file__).with_name("test_leases_worker_process.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Local expiry 3.0 - min(3, 3.0 / 3) = 2.0 s: four heartbeats, so a loaded CI machine does
# not lapse.
HEARTBEAT_S = 0.5
FAILOVER_S = 3.0
TAKE_S = 0.5


@dataclass
class Fleet:
    """Worker processes of one application; every process is killed at teardown."""

    stack: LocalStackState
    app: str
    stream: str
    directory: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, worker_id: str, *, on_signal: bool = False) -> None:
        """Starts a worker process; with `on_signal` it only imports and waits for
        `go(worker_id)` (process start-up is slow on a busy machine; this hides it)."""
        command = [
            sys.executable,
            str(WORKER_SCRIPT),
            "--moto-url", self.stack.moto_url,
            "--kinesis-url", self.stack.kinesis_url,
            "--app", self.app,
            "--stream", self.stream,
            "--worker-id", worker_id,
            "--out", str(self.directory / f"{worker_id}.jsonl"),
            "--heartbeat", str(HEARTBEAT_S),
            "--failover", str(FAILOVER_S),
            "--take", str(TAKE_S),
            *(["--start-on-sigusr1"] if on_signal else []),
        ]
        log = (self.directory / f"{worker_id}.log").open("wb")
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        self.processes[worker_id] = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, env=env
        )
        log.close()

    def go(self, worker_id: str) -> None:
        log = self.directory / f"{worker_id}.log"
        wait_for(lambda: "waiting for SIGUSR1" in log.read_text(), 60, self.log_tail)
        self.signal(worker_id, signal.SIGUSR1)

    def signal(self, worker_id: str, sig: signal.Signals) -> None:
        self.processes[worker_id].send_signal(sig)

    def wait(self, worker_id: str, timeout_s: float = 15.0) -> int:
        return self.processes[worker_id].wait(timeout=timeout_s)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)

    def deliveries(self) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        for path in sorted(self.directory.glob("*.jsonl")):
            for raw in path.read_text().splitlines():
                if raw:
                    lines.append(json.loads(raw))
        return lines

    def log_tail(self) -> str:
        parts = []
        for path in sorted(self.directory.glob("*.log")):
            parts.append(f"--- {path.name}\n" + "\n".join(path.read_text().splitlines()[-15:]))
        return "\n".join(parts)


@pytest.fixture
def fleet(
    local_stack: LocalStackState, unique_name: str, tmp_path: Path
) -> Iterator[Fleet]:
    fleet = Fleet(local_stack, unique_name, f"{unique_name}-stream", tmp_path)
    try:
        yield fleet
    finally:
        fleet.stop_all()


def create_stream(endpoints: AwsEndpoints, name: str, shards: int) -> Any:
    kinesis = endpoints.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    wait_active(kinesis, name)
    return kinesis


def wait_active(kinesis: Any, name: str) -> None:
    for _ in range(200):
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.05)
    raise AssertionError(f"stream {name} did not become ACTIVE")


def put_batches(kinesis: Any, stream: str, keys: int, batches: int, start: int = 0) -> set[str]:
    """Puts `batches` requests of one record per key ("k<i>": "<k>:<n>", n increasing per
    key across batches, so per-key order is the batch order). Returns the sequence numbers."""
    sequence_numbers: set[str] = set()
    for batch in range(start, start + batches):
        records = [
            {"Data": f"k{k}:{batch}".encode(), "PartitionKey": f"k{k}"} for k in range(keys)
        ]
        response = kinesis.put_records(StreamName=stream, Records=records)
        assert response.get("FailedRecordCount", 0) == 0
        sequence_numbers.update(r["SequenceNumber"] for r in response["Records"])
    return sequence_numbers


def scan_leases(endpoints: AwsEndpoints, app: str) -> list[dict[str, Any]]:
    dynamodb = endpoints.client("dynamodb")
    try:
        items = dynamodb.scan(TableName=f"{app}-leases", ConsistentRead=True)["Items"]
    except dynamodb.exceptions.ResourceNotFoundException:
        return []
    return [i for i in items if not i["leaseKey"]["S"].startswith("__worker__#")]


def owners(endpoints: AwsEndpoints, app: str) -> Counter[str]:
    return Counter(
        item["leaseOwner"]["S"]
        for item in scan_leases(endpoints, app)
        if "leaseOwner" in item and item["checkpoint"]["S"] != "SHARD_END"
    )


def wait_for(
    condition: Callable[[], bool], timeout_s: float, message: Callable[[], str], step: float = 0.1
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout_s} s: {message()}")


def delivered_all(fleet: Fleet, expected: set[str]) -> bool:
    return expected <= {line["seq"] for line in fleet.deliveries()}


def test_a_fleet_of_worker_processes_through_converge_sigterm_join_reshard_and_kill_9(
    endpoints: AwsEndpoints, fleet: Fleet
) -> None:
    """One stream, one fleet, in phases (starting processes is the slow part):
    1. three workers over 12 shards converge to 4/4/4 and stay there;
    2. SIGTERM of one: its shards move with zero duplicate deliveries;
    3. a new worker joins: balancing by graceful handoff, again zero duplicates;
    4. a split and a merge while running: per-key order holds (parents before children);
    5. kill -9 of one: the others own all its shards within failover time plus one take
       interval, and every record is still delivered (at least once).
    Records carry "k<key>:<n>" with n increasing per key across all phases."""
    kinesis = create_stream(endpoints, fleet.stream, 12)
    for worker in ("w1", "w2", "w3"):
        fleet.start(worker)
    fleet.start("w4", on_signal=True)  # joins in phase 3
    batches = 0

    def put(count: int) -> set[str]:
        nonlocal batches
        sequence_numbers = put_batches(kinesis, fleet.stream, keys=48, batches=count,
                                       start=batches)
        batches += count
        return sequence_numbers

    def shape() -> list[int]:
        return sorted(owners(endpoints, fleet.app).values())

    def describe() -> str:
        return f"owners {owners(endpoints, fleet.app)}\n{fleet.log_tail()}"

    # 1. converge, and stay: the same owner and fencing token on every lease for a while.
    # Records go in only now: moto (unlike DynamoDB) lets two concurrent conditional writes
    # on one item both succeed, so racing first takes could double-deliver on the emulator.
    wait_for(lambda: shape() == [4, 4, 4], 60, describe)
    before = lease_tokens(endpoints, fleet.app)
    time.sleep(6 * TAKE_S)
    assert lease_tokens(endpoints, fleet.app) == before
    expected = put(2)

    # 2. SIGTERM (ECS stop): checkpoint, hand off, exit 0.
    fleet.signal("w2", signal.SIGTERM)
    assert fleet.wait("w2") == 0
    expected |= put(2)
    wait_for(lambda: shape() == [6, 6], 3 * TAKE_S + 10, describe)

    # 3. a newcomer takes its share by graceful handoffs.
    fleet.go("w4")
    wait_for(lambda: shape() == [4, 4, 4], 60, describe)
    expected |= put(2)
    wait_for(lambda: delivered_all(fleet, expected), 30, fleet.log_tail)
    counts = Counter(line["seq"] for line in fleet.deliveries())
    duplicates = {seq: c for seq, c in counts.items() if c > 1}
    assert duplicates == {}, f"{len(duplicates)} records delivered twice by planned moves"
    assert set(counts) == expected

    # 4. split one shard, then merge two adjacent ones, with records before and after each.
    shards = kinesis.list_shards(StreamName=fleet.stream)["Shards"]
    first = shards[0]
    low = int(first["HashKeyRange"]["StartingHashKey"])
    high = int(first["HashKeyRange"]["EndingHashKey"])
    kinesis.split_shard(StreamName=fleet.stream, ShardToSplit=first["ShardId"],
                        NewStartingHashKey=str((low + high) // 2))
    wait_active(kinesis, fleet.stream)
    expected |= put(2)
    kinesis.merge_shards(StreamName=fleet.stream, ShardToMerge=shards[2]["ShardId"],
                         AdjacentShardToMerge=shards[3]["ShardId"])
    wait_active(kinesis, fleet.stream)
    expected |= put(2)
    wait_for(lambda: delivered_all(fleet, expected), 60, fleet.log_tail)
    leases = {i["leaseKey"]["S"]: i for i in scan_leases(endpoints, fleet.app)}
    for parent in (shards[0]["ShardId"], shards[2]["ShardId"], shards[3]["ShardId"]):
        assert leases[parent]["checkpoint"]["S"] == "SHARD_END"
        assert "leaseOwner" not in leases[parent]
    parents_of = [set(i.get("parentShardId", {}).get("SS", [])) for i in leases.values()]
    assert parents_of.count({shards[0]["ShardId"]}) == 2
    assert parents_of.count({shards[2]["ShardId"], shards[3]["ShardId"]}) == 1
    wait_for(lambda: shape() == [4, 4, 4], 30, describe)  # 12 open shards again

    # 5. kill -9: no release, no goodbye.
    victim = owners(endpoints, fleet.app).most_common(1)[0][0]
    fleet.signal(victim, signal.SIGKILL)
    elapsed = wait_for(lambda: shape() == [6, 6], FAILOVER_S + TAKE_S + 10, describe, step=0.05)
    # The promise: failover time plus one take interval; 1.5 s more for the scan, the
    # writes and this poll on a loaded CI machine (about 0.2 s when idle).
    assert elapsed <= FAILOVER_S + TAKE_S + 1.5, f"takeover took {elapsed:.2f} s"
    expected |= put(2)
    wait_for(lambda: delivered_all(fleet, expected), 30, fleet.log_tail)

    # Per key, first deliveries come in put order: every parent's records were processed
    # before any of its children's (invariant 4), and no move reordered anything.
    assert_per_key_order(fleet.deliveries(), batches)


def assert_per_key_order(deliveries: list[dict[str, Any]], batches: int) -> None:
    by_key: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for line in sorted(deliveries, key=lambda d: (d["t"], d["seq"])):
        if line["seq"] in seen:
            continue
        seen.add(line["seq"])
        key, number = line["data"].split(":")
        by_key[key].append(int(number))
    for key, numbers in by_key.items():
        assert numbers == list(range(batches)), f"{key} out of order: {numbers}"


def lease_tokens(endpoints: AwsEndpoints, app: str) -> dict[str, tuple[str, str]]:
    return {
        item["leaseKey"]["S"]: (item.get("leaseOwner", {}).get("S", ""), item["leaseCounter"]["N"])
        for item in scan_leases(endpoints, app)
    }
