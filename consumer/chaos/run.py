"""LOCAL ONLY: the chaos run, start to finish (see the package docstring).

Its own local stack in a temporary directory (always stopped), fault proxies, three
`consumer run` workers, a writer and the destination bridge in threads, the fault schedule,
then convergence and the checks (`report`). `run_chaos` returns the process exit code.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from consumer.aws import AwsEndpoints
from consumer.chaos.faults import (
    ChaosPlan,
    Fault,
    WorkerPool,
    WorkerProcess,
    merge_shards,
    plan_faults,
    split_shard,
    wait_for_takeover,
)
from consumer.chaos.hooks import DELIVERY_DIR_ENV, POISON_PREFIX
from consumer.chaos.proxy import OutageProxy, ProxyThread, ThrottlingProxy
from consumer.chaos.report import (
    ChaosResult,
    classify_duplicates,
    poison_identity,
    read_deliveries,
    read_dlq,
    read_lease_events,
)
from consumer.local.bridge import BridgeOptions, DestinationBridge
from consumer.local.sample_orders import create_kinesis_stream, create_source_table
from consumer.local.stack import LocalStack, LocalStackState
from consumer.local.verify import (
    Mismatches,
    compare_items,
    create_replica,
    replica_items,
    search_documents,
    source_items,
)

APP = "chaos"
WORKERS = 3
THROTTLE_RATE = 0.10
WRITES_PER_S = 20.0


def say(text: str) -> None:
    print(f"chaos: {text}", flush=True)


@dataclass
class Names:
    table: str = f"{APP}-orders"
    stream: str = f"{APP}-cdc"
    replica: str = f"{APP}-replica"
    queue: str = f"{APP}-dlq"
    leases: str = f"{APP}-leases"


class Writer(threading.Thread):
    """Inserts, updates and deletes orders at a steady rate until stopped."""

    def __init__(self, dynamodb: Any, table: str, seed: int) -> None:
        super().__init__(name="chaos-writer", daemon=True)
        self._dynamodb = dynamodb
        self._table = table
        self._random = random.Random(seed)
        self.stop_event = threading.Event()
        self.changes = 0
        self.error: BaseException | None = None

    def _item(self, key: str, version: int) -> dict[str, Any]:
        rng = self._random
        return {
            "pk": {"S": key},
            "status": {"S": rng.choice(["NEW", "PAID", "PACKED", "SHIPPED"])},
            "total": {"N": str(Decimal(rng.randint(100, 999_999)) / 100)},
            "lines": {"L": [{"M": {"sku": {"S": f"SKU-{rng.randint(1, 99)}"}}}]},
            "tags": {"SS": sorted({rng.choice(["gift", "express", "bulk"]) for _ in "ab"})},
            "signature": {"B": rng.randbytes(8)},
            "version": {"N": str(version)},
        }

    def run(self) -> None:
        live: dict[str, int] = {}
        next_id = 1
        try:
            while not self.stop_event.is_set():
                started = time.monotonic()
                roll = self._random.random()
                if not live or roll < 0.4:
                    key = f"order#{next_id:06d}"
                    next_id += 1
                    live[key] = 1
                    self._dynamodb.put_item(TableName=self._table, Item=self._item(key, 1))
                elif roll < 0.85:
                    key = self._random.choice(sorted(live))
                    live[key] += 1
                    self._dynamodb.put_item(TableName=self._table, Item=self._item(key, live[key]))
                else:
                    key = self._random.choice(sorted(live))
                    del live[key]
                    self._dynamodb.delete_item(TableName=self._table, Key={"pk": {"S": key}})
                self.changes += 1
                self.stop_event.wait(max(0.0, 1 / WRITES_PER_S - (time.monotonic() - started)))
        except BaseException as error:  # reported by the run, which then fails
            self.error = error


class BridgePump(threading.Thread):
    """Pumps the destination bridge until stopped, then drains it."""

    def __init__(self, bridge: DestinationBridge) -> None:
        super().__init__(name="chaos-bridge", daemon=True)
        self.bridge = bridge
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                if not self.bridge.pump():
                    self.stop_event.wait(0.2)
            idle = 0
            while idle < 3:
                idle = idle + 1 if not self.bridge.pump() else 0
                time.sleep(0.3)
        except BaseException as error:  # reported by the run, which then fails
            self.error = error


@dataclass
class RunState:
    faults_applied: list[str] = field(default_factory=list)
    takeovers_s: list[float] = field(default_factory=list)
    takeover_timeouts: int = 0
    poison_records: int = 0
    poison_items: int = 0


def _worker_environment(
    state: LocalStackState, names: Names, proxies: ProxyThread, work_dir: Path
) -> dict[str, str]:
    return {
        "CONSUMER_APPLICATION": APP,
        "CONSUMER_STREAM__NAME": names.stream,
        "CONSUMER_STREAM__MODE": "polling",
        "CONSUMER_AWS__REGION": "us-east-1",
        "CONSUMER_AWS__ENDPOINT_KINESIS": state.kinesis_url,
        "CONSUMER_AWS__ENDPOINT_DYNAMODB": f"http://127.0.0.1:{proxies.throttle.port}",
        "CONSUMER_AWS__ENDPOINT_DYNAMODBSTREAMS": state.moto_url,
        "CONSUMER_AWS__ENDPOINT_S3": state.moto_url,
        "CONSUMER_AWS__ENDPOINT_SQS": state.moto_url,
        "CONSUMER_AWS__ACCESS_KEY_ID": "000000000000",
        "CONSUMER_AWS__SECRET_ACCESS_KEY": "local",
        "CONSUMER_PIPELINES__REPLICATION__ENABLED": "true",
        "CONSUMER_PIPELINES__REPLICATION__TABLE": names.replica,
        "CONSUMER_PIPELINES__REPLICATION__ENDPOINT": f"http://127.0.0.1:{proxies.outage.port}",
        "CONSUMER_PIPELINES__REPLICATION__TRANSFORM": "consumer.chaos.hooks:record_and_pass",
        "CONSUMER_PIPELINES__SEARCH__ENABLED": "true",
        "CONSUMER_PIPELINES__SEARCH__LOCAL_PATH": str(work_dir / "search"),
        "CONSUMER_DLQ__QUEUE_URL": f"{state.moto_url}/000000000000/{names.queue}",
        "CONSUMER_TELEMETRY__HEALTH_PORT": "0",
        "CONSUMER_TELEMETRY__EMF": "false",
        "CONSUMER_LEASES__HEARTBEAT_INTERVAL_S": "0.5",
        "CONSUMER_LEASES__FAILOVER_S": "3",
        "CONSUMER_LEASES__TAKE_INTERVAL_S": "0.5",
        "CONSUMER_CHECKPOINT_INTERVAL_S": "0.5",
        DELIVERY_DIR_ENV: str(work_dir / "deliveries"),
    }


class ChaosRun:
    def __init__(self, state: LocalStackState, work_dir: Path, seed: int, short: bool) -> None:
        self.state = state
        self.work_dir = work_dir
        self.seed = seed
        self.short = short
        self.names = Names()
        self.endpoints: AwsEndpoints = state.endpoints()
        self.rng = random.Random(seed)
        self.plan: ChaosPlan = plan_faults(self.rng, short)
        self.proxies = ProxyThread(
            OutageProxy("127.0.0.1", state.moto_port), ThrottlingProxy(state.moto_url, seed)
        )
        self.run_state = RunState()
        self.outage_until = 0.0
        self.pool = WorkerPool(self.worker_environment, work_dir / "workers")

    def worker_environment(self, worker_id: str) -> dict[str, str]:
        # Built per spawn: the proxies' ports are known only once they started.
        base = _worker_environment(self.state, self.names, self.proxies, self.work_dir)
        return {**base, "CONSUMER_LEASES__WORKER_ID": worker_id}

    # --- setup ------------------------------------------------------------------------

    def create_resources(self) -> None:
        names = self.names
        create_source_table(self.endpoints.client("dynamodb"), names.table)
        create_kinesis_stream(self.endpoints.client("kinesis"), names.stream, 2)
        self.endpoints.client("sqs").create_queue(QueueName=names.queue)
        create_replica(self.endpoints, names.replica)
        for directory in ("deliveries", "workers", "search"):
            (self.work_dir / directory).mkdir(parents=True, exist_ok=True)

    def leases(self) -> list[dict[str, Any]]:
        client = self.endpoints.client("dynamodb")
        try:
            items = client.scan(TableName=self.names.leases, ConsistentRead=True)["Items"]
        except client.exceptions.ResourceNotFoundException:
            return []
        return [item for item in items if item["leaseKey"]["S"].startswith("shardId")]

    def owners(self) -> dict[str, int]:
        held: dict[str, int] = {}
        for item in self.leases():
            if item.get("checkpoint", {}).get("S") == "SHARD_END":
                continue
            owner = item.get("leaseOwner", {}).get("S")
            if owner:
                held[owner] = held.get(owner, 0) + 1
        return held

    # --- faults -------------------------------------------------------------------------

    def _victim(self, wait_s: float = 20.0) -> WorkerProcess | None:
        """A random live worker that holds a shard (waiting up to `wait_s` for one: new
        workers take several seconds to start on a busy machine), else any live worker."""
        deadline = time.monotonic() + wait_s
        while True:
            alive = self.pool.alive()
            held = self.owners()
            holding = [w for w in alive if held.get(w.worker_id)]
            if holding:
                return self.rng.choice(holding)
            if time.monotonic() >= deadline:
                return self.rng.choice(alive) if alive else None
            time.sleep(0.5)

    def apply(self, fault: Fault, elapsed: float) -> None:
        kinesis = self.endpoints.client("kinesis")
        note: str
        if fault.kind == "kill9":
            victim = self._victim()
            if victim is None:
                return
            killed_at = time.monotonic()
            self.pool.kill9(victim)
            replacement = self.pool.spawn()
            held = self.owners().get(victim.worker_id, 0)
            took = wait_for_takeover(self.leases, victim.worker_id, killed_at, 45.0)
            if not held:
                note = f"kill -9 {victim.worker_id} (+{replacement.worker_id}), it held no shard"
            elif took is None:
                self.run_state.takeover_timeouts += 1
                note = f"kill -9 {victim.worker_id} (+{replacement.worker_id}), takeover timed out"
            else:
                self.run_state.takeovers_s.append(took)
                note = (
                    f"kill -9 {victim.worker_id} (+{replacement.worker_id}), takeover {took:.1f}s"
                )
        elif fault.kind == "sigterm":
            if time.monotonic() < self.outage_until + 2:
                note = "SIGTERM skipped (sink outage in progress)"
            else:
                victim = self._victim()
                if victim is None:
                    return
                self.pool.sigterm(victim)
                replacement = self.pool.spawn()
                note = f"SIGTERM {victim.worker_id} (+{replacement.worker_id})"
        elif fault.kind == "split":
            note = split_shard(kinesis, self.names.stream, self.rng)
        elif fault.kind == "merge":
            note = merge_shards(kinesis, self.names.stream, self.rng)
        elif fault.kind == "outage":
            self.proxies.set_outage(True)
            self.outage_until = time.monotonic() + fault.duration_s
            timer = threading.Timer(fault.duration_s, self.proxies.set_outage, (False,))
            timer.daemon = True
            timer.start()
            note = f"replica sink outage {fault.duration_s:.0f}s"
        elif fault.kind == "poison_record":
            index = self.run_state.poison_records
            kinesis.put_record(
                StreamName=self.names.stream,
                Data=f"chaos-poison-{index} not a change record".encode(),
                PartitionKey=f"poison-{index}",
            )
            self.run_state.poison_records += 1
            note = "undecodable record"
        else:
            index = self.run_state.poison_items
            self.endpoints.client("dynamodb").put_item(
                TableName=self.names.table,
                Item={"pk": {"S": f"{POISON_PREFIX}-{index}"}, "status": {"S": "NEW"}},
            )
            self.run_state.poison_items += 1
            note = "poison item"
        line = f"t={elapsed:5.1f}s {note}"
        self.run_state.faults_applied.append(line)
        say(line)

    # --- convergence and checks ---------------------------------------------------------

    def compare(self) -> tuple[Mismatches, Mismatches]:
        source = source_items(self.endpoints, self.names.table)
        expected = [i for i in source if not i["pk"]["S"].startswith(POISON_PREFIX)]
        replica_lines, search_lines = Mismatches(), Mismatches()
        compare_items(
            "replica",
            expected,
            replica_items(self.endpoints, self.names.replica),
            "pk",
            replica_lines,
        )
        compare_items(
            "search",
            source,
            search_documents(self.work_dir / "search"),
            "pk",
            search_lines,
            plain=True,
        )
        return replica_lines, search_lines

    def poison_found(self) -> tuple[int, int]:
        bodies = read_dlq(self.endpoints.client("sqs"), self.state_queue_url)
        found = {identity for body in bodies if (identity := poison_identity(body))}
        return len(found), len(bodies)

    @property
    def state_queue_url(self) -> str:
        return f"{self.state.moto_url}/000000000000/{self.names.queue}"

    def dlq_depth(self) -> int:
        attributes = self.endpoints.client("sqs").get_queue_attributes(
            QueueUrl=self.state_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0))

    def converge(self, timeout_s: float) -> float:
        """Waits until the replica and the search index match the table and the DLQ holds at
        least as many messages as poison was planted (the exact count is checked after: a
        receive hides the messages, so it is done once)."""
        start = time.monotonic()
        expected_poison = self.run_state.poison_records + self.run_state.poison_items
        while time.monotonic() - start < timeout_s:
            replica_lines, search_lines = self.compare()
            if (
                not replica_lines.lines
                and not search_lines.lines
                and self.dlq_depth() >= expected_poison
            ):
                break
            time.sleep(2)
        return time.monotonic() - start

    def execute(self) -> ChaosResult:
        started = time.monotonic()
        self.create_resources()
        self.proxies.start()
        bridge = DestinationBridge(
            self.endpoints.client("dynamodbstreams"),
            self.endpoints.client("kinesis"),
            self.names.table,
            self.names.stream,
            self.endpoints.region,
            BridgeOptions(duplicate_rate=0.05, reorder_rate=0.2, seed=self.seed),
        )
        writer = Writer(self.endpoints.client("dynamodb"), self.names.table, self.seed)
        pump = BridgePump(bridge)
        try:
            for _ in range(WORKERS):
                self.pool.spawn()
            self.proxies.set_throttle_rate(THROTTLE_RATE)
            writer.start()
            pump.start()
            chaos_start = time.monotonic()
            say(
                f"seed {self.seed}, {len(self.plan.faults)} faults over {self.plan.duration_s:.0f}s"
            )
            for fault in self.plan.faults:
                wait = fault.at_s - (time.monotonic() - chaos_start)
                if wait > 0:
                    time.sleep(wait)
                self.apply(fault, time.monotonic() - chaos_start)
            remaining = self.plan.duration_s - (time.monotonic() - chaos_start)
            if remaining > 0:
                time.sleep(remaining)
            writer.stop_event.set()
            writer.join()
            pump.stop_event.set()
            pump.join()
            self.proxies.set_throttle_rate(0.0)
            wait_outage = self.outage_until - time.monotonic()
            if wait_outage > 0:
                time.sleep(wait_outage)
            self.proxies.set_outage(False)
            say(f"writes stopped at {time.monotonic() - started:.0f}s; converging")
            converge_s = self.converge(90.0 if self.short else 180.0)
            say(f"converged (or gave up) after {converge_s:.1f}s")
        finally:
            writer.stop_event.set()
            pump.stop_event.set()
            stop_problems = self.pool.stop_all(40.0)
            self.proxies.stop()
        return self.result(writer, pump, stop_problems, time.monotonic() - started)

    def result(
        self, writer: Writer, pump: BridgePump, stop_problems: list[str], elapsed: float
    ) -> ChaosResult:
        replica_lines, search_lines = self.compare()
        lost = sum(1 for line in replica_lines.lines if line.endswith(("is missing", "differs")))
        found, messages = self.poison_found()
        duplicates = classify_duplicates(
            read_deliveries(self.work_dir / "deliveries"),
            self.pool.by_pid(),
            read_lease_events(self.pool.workers),
        )
        stats = pump.bridge.stats
        throttle, outage = self.proxies.throttle, self.proxies.outage
        info = {
            "seed": str(self.seed),
            "mode": "short" if self.short else "full",
            "changes_written": str(writer.changes),
            "bridge_records": f"{stats.written} (duplicates {stats.duplicates}, "
            f"reorderings {stats.reorderings})",
            "workers_started": str(len(self.pool.workers)),
            "faults_applied": str(len(self.run_state.faults_applied)),
            "lease_table_requests": f"{throttle.requests} (throttled {throttle.throttled})",
            "replica_connections_refused": str(outage.refused),
            "dlq_messages": str(messages),
            "duplicates_after_kill9": str(duplicates.after_kill),
            "duplicates_after_lease_lost": str(duplicates.lease_lost),
            "duplicates_unexplained": str(duplicates.other),
            "elapsed_s": f"{elapsed:.0f}",
        }
        details = [*replica_lines.lines, *search_lines.lines, *duplicates.examples]
        details += stop_problems
        for thread_error in (writer.error, pump.error):
            if thread_error is not None:
                details.append(f"thread error: {thread_error!r}")
        return ChaosResult(
            lost=lost + (1 if writer.error or pump.error else 0),
            mismatches=len(replica_lines.lines) + len(search_lines.lines),
            planned_duplicates=duplicates.planned,
            poison_found=found,
            poison_expected=self.run_state.poison_records + self.run_state.poison_items,
            takeovers_s=self.run_state.takeovers_s,
            takeover_timeouts=self.run_state.takeover_timeouts,
            info=info,
            details=details,
        )


def run_chaos(seed: int, short: bool, keep_dir: Path | None = None) -> int:
    """`keep_dir`: work there (logs, search index, delivery logs) and keep it afterwards."""
    with tempfile.TemporaryDirectory(prefix="chaos-") as directory:
        work_dir = keep_dir or Path(directory)
        stack = LocalStack(work_dir / "stack")
        try:
            state = stack.start()
            say(f"local stack up (moto {state.moto_port}, kinesis-mock {state.kinesis_port})")
            result = ChaosRun(state, work_dir, seed, short).execute()
        finally:
            stack.stop()
    for line in result.lines():
        print(line, flush=True)
    return 1 if result.failures else 0
