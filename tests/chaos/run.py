"""LOCAL ONLY: the chaos run, start to finish (see the package docstring).

Its own local stack in a temporary directory (always stopped), fault proxies, three
`consumer run` workers (EFO or polling), a writer and the destination bridge in threads, a
lease-table watcher, the fault schedule, then convergence and the checks (`report`,
`leasewatch`). `run_chaos` runs one or both modes and returns the process exit code.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import orjson

from consumer.aws import AwsEndpoints
from consumer.local.bridge import BridgeOptions, DestinationBridge, opaque_partition_key
from consumer.local.resources import create_replica
from consumer.local.sample_orders import create_kinesis_stream, create_source_table
from consumer.local.stack import LocalStack, LocalStackState
from consumer.verify.check import SinkCheck, check_sinks, settings_from_environment
from tests.chaos.canary import canary_environment, canary_key, with_canary
from tests.chaos.faults import (
    ChaosPlan,
    Fault,
    WorkerPool,
    WorkerProcess,
    merge_shards,
    plan_faults,
    split_shard,
    wait_for_takeover,
)
from tests.chaos.hooks import DELIVERY_DIR_ENV, POISON_PREFIX, stall_request_path
from tests.chaos.leasewatch import (
    LeaseWatch,
    Stoppage,
    processing_without_lease,
    read_acquisitions,
    sequence_shards,
    shard_writes,
    takeover_processing,
)
from tests.chaos.proxy import ApplyLogProxy, OutageProxy, ProxyThread, ThrottlingProxy
from tests.chaos.report import (
    MIXED_POISON_ATTRIBUTE,
    ChaosResult,
    classify_duplicates,
    parked_description,
    poison_identity,
    read_deliveries,
    read_dlq,
    read_lease_events,
)

APP = "chaos"
WORKERS = 3
THROTTLE_RATE = 0.10
WRITES_PER_S = 20.0
Mode = Literal["efo", "polling"]
# Lease timings of the chaos workers (production defaults: 10 s and 5 s).
FAILOVER_S = 3.0
TAKE_INTERVAL_S = 0.5
# The issue 15 target: records flow again within failover + take interval + 5 s of a kill.
TAKEOVER_PROCESSING_LIMIT_S = FAILOVER_S + TAKE_INTERVAL_S + 5.0
# A stall or SIGSTOP long enough for another worker to take the shards meanwhile.
STALL_S = FAILOVER_S + TAKE_INTERVAL_S + 2.5
MISSING_REPLICA = f"{APP}-no-such-replica"


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
        item = {
            "pk": {"S": key},
            "status": {"S": rng.choice(["NEW", "PAID", "PACKED", "SHIPPED"])},
            "total": {"N": str(Decimal(rng.randint(100, 999_999)) / 100)},
            "lines": {"L": [{"M": {"sku": {"S": f"SKU-{rng.randint(1, 99)}"}}}]},
            "tags": {"SS": sorted({rng.choice(["gift", "express", "bulk"]) for _ in "ab"})},
            "signature": {"B": rng.randbytes(8)},
            "version": {"N": str(version)},
        }
        return with_canary(item)

    def run(self) -> None:
        live: dict[str, int] = {}
        next_id = 1
        try:
            while not self.stop_event.is_set():
                started = time.monotonic()
                roll = self._random.random()
                if not live or roll < 0.4:
                    key = canary_key(f"order#{next_id:06d}")
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
    mixed_batches: int = 0
    # The sequence number of the newest good change of each mixed batch: it must be written.
    mixed_newest_good: list[str] = field(default_factory=list)
    stoppages: list[Stoppage] = field(default_factory=list)
    misconfigured_exits: dict[str, tuple[int | None, float]] = field(default_factory=dict)

    # Planted poison that must reach the DLQ (poison_identity's names). A mixed batch's poison
    # counts only when it is the newest in time: an older one is superseded by a good change in
    # its batch and need not be tried (parked if it is, never required).
    poison_required: set[str] = field(default_factory=set)

    @property
    def poison_planted(self) -> int:
        return len(self.poison_required)


def _worker_environment(
    state: LocalStackState, names: Names, proxies: ProxyThread, work_dir: Path, mode: Mode
) -> dict[str, str]:
    return {
        "CONSUMER_APPLICATION": APP,
        "CONSUMER_STREAM__NAME": names.stream,
        "CONSUMER_STREAM__MODE": mode,
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
        "CONSUMER_PIPELINES__REPLICATION__TRANSFORM": "tests.chaos.hooks:record_and_pass",
        "CONSUMER_PIPELINES__SEARCH__ENABLED": "true",
        "CONSUMER_PIPELINES__SEARCH__LOCAL_PATH": str(work_dir / "search"),
        "CONSUMER_DLQ__QUEUE_URL": f"{state.moto_url}/000000000000/{names.queue}",
        "CONSUMER_TELEMETRY__HEALTH_PORT": "0",
        "CONSUMER_TELEMETRY__EMF": "false",
        "CONSUMER_LEASES__HEARTBEAT_INTERVAL_S": "0.5",
        "CONSUMER_LEASES__FAILOVER_S": str(FAILOVER_S),
        "CONSUMER_LEASES__TAKE_INTERVAL_S": str(TAKE_INTERVAL_S),
        "CONSUMER_CHECKPOINT_INTERVAL_S": "0.5",
        DELIVERY_DIR_ENV: str(work_dir / "deliveries"),
    }


class ChaosRun:
    def __init__(
        self,
        state: LocalStackState,
        work_dir: Path,
        seed: int,
        short: bool,
        mode: Mode,
        kinesis_endpoint: str | None = None,
    ) -> None:
        """`kinesis_endpoint`: the workers' Kinesis endpoint if not kinesis-mock itself."""
        self.state = state
        self.work_dir = work_dir
        self.seed = seed
        self.short = short
        self.mode: Mode = mode
        self.kinesis_endpoint = kinesis_endpoint or state.kinesis_url
        self.names = Names()
        self.endpoints: AwsEndpoints = state.endpoints()
        self.rng = random.Random(seed)
        self.plan: ChaosPlan = plan_faults(self.rng, short)
        self.proxies = ProxyThread(
            OutageProxy("127.0.0.1", state.moto_port),
            ThrottlingProxy(state.moto_url, seed),
            ApplyLogProxy(state.moto_url),
        )
        self.run_state = RunState()
        self.outage_until = 0.0
        self.pool = WorkerPool(self.worker_environment, work_dir / "workers")
        self.lease_watch = LeaseWatch(self.leases)
        self.restarts_stop = threading.Event()

    def worker_environment(self, worker_id: str) -> dict[str, str]:
        # Built per spawn: the proxies' ports are known only once they started.
        base = _worker_environment(self.state, self.names, self.proxies, self.work_dir, self.mode)
        return {
            **base,
            "CONSUMER_AWS__ENDPOINT_KINESIS": self.kinesis_endpoint,
            "CONSUMER_LEASES__WORKER_ID": worker_id,
            # botocore puts "app/<id>" in each request's User-Agent: the apply log's sender.
            "AWS_SDK_UA_APP_ID": worker_id,
            **canary_environment(),
        }

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

    def _held_by(self, worker_id: str) -> tuple[str, ...]:
        return tuple(
            sorted(
                item["leaseKey"]["S"]
                for item in self.leases()
                if item.get("leaseOwner", {}).get("S") == worker_id
                and item.get("checkpoint", {}).get("S") != "SHARD_END"
            )
        )

    def _after_outage(self) -> None:
        """Takeover times are measured until the replica is written again: not in an outage."""
        wait = self.outage_until + 1.0 - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _kill9(self) -> str | None:
        self._after_outage()
        victim = self._victim()
        if victim is None:
            return None
        shards = self._held_by(victim.worker_id)
        killed_at, killed_wall = time.monotonic(), time.time()
        self.pool.kill9(victim)
        replacement = self.pool.spawn()
        self.run_state.stoppages.append(Stoppage(killed_wall, "kill -9", victim.worker_id, shards))
        took = wait_for_takeover(self.leases, victim.worker_id, killed_at, 45.0)
        if not shards:
            return f"kill -9 {victim.worker_id} (+{replacement.worker_id}), it held no shard"
        if took is None:
            self.run_state.takeover_timeouts += 1
            return f"kill -9 {victim.worker_id} (+{replacement.worker_id}), takeover timed out"
        self.run_state.takeovers_s.append(took)
        return f"kill -9 {victim.worker_id} (+{replacement.worker_id}), takeover {took:.1f}s"

    def _sigstop(self) -> str | None:
        """Stopped past the failover time (its shards are taken meanwhile), then resumed: it
        must apply nothing for them once it runs again."""
        self._after_outage()
        victim = self._victim()
        if victim is None:
            return None
        shards = self._held_by(victim.worker_id)
        stopped_at, stopped_wall = time.monotonic(), time.time()
        self.pool.sigstop(victim)
        try:
            self.run_state.stoppages.append(
                Stoppage(stopped_wall, "SIGSTOP", victim.worker_id, shards)
            )
            took = wait_for_takeover(self.leases, victim.worker_id, stopped_at, 30.0)
            remaining = STALL_S - (time.monotonic() - stopped_at)
            if remaining > 0:
                time.sleep(remaining)
        finally:
            self.pool.sigcont(victim)
        held = f"{len(shards)} shards" if shards else "no shard"
        if shards and took is None:
            self.run_state.takeover_timeouts += 1
        taken = "takeover timed out" if took is None else f"takeover {took:.1f}s"
        stopped_s = time.monotonic() - stopped_at
        return f"SIGSTOP {victim.worker_id} ({held}) for {stopped_s:.1f}s, {taken}, SIGCONT"

    def _stall(self) -> str | None:
        victim = self._victim()
        if victim is None:
            return None
        request = stall_request_path(self.work_dir / "deliveries", victim.worker_id)
        request.write_text(f"{STALL_S}")
        return f"event-loop stall of {STALL_S:.1f}s requested in {victim.worker_id}'s sink write"

    def _misconfigured(self) -> str:
        worker = self.pool.spawn({"CONSUMER_PIPELINES__REPLICATION__TABLE": MISSING_REPLICA})

        def wait_exit() -> None:
            try:
                code: int | None = worker.process.wait(60.0)
            except Exception:  # still running after a minute: reported as a problem
                code = None
            self.run_state.misconfigured_exits[worker.worker_id] = (
                code,
                time.time() - worker.started,
            )

        threading.Thread(target=wait_exit, daemon=True).start()
        return f"started {worker.worker_id} with a missing replica table ({MISSING_REPLICA})"

    def _mixed_batch(self) -> str:
        """One PutRecords with two good changes and a poison change of one key, the poison
        oldest, middle or newest in time (in turn) and the arrival order shuffled. The table
        gets the newest good state first (so the sinks must converge to it; the bridge's copy
        of that write is older than the batch and changes nothing)."""
        index = self.run_state.mixed_batches
        self.run_state.mixed_batches += 1
        key = f"mixed-{index:03d}"
        keys = {"pk": {"S": key}}
        good: list[dict[str, Any]] = [
            with_canary({**keys, "status": {"S": "MIXED"}, "step": {"N": str(step)}})
            for step in (1, 2)
        ]
        # An S value that is a number: DynamoDB's typed JSON refuses it, every sink parks it.
        poison = with_canary({**keys, "qty": {"S": 5}, MIXED_POISON_ATTRIBUTE: {"BOOL": True}})
        self.endpoints.client("dynamodb").put_item(TableName=self.names.table, Item=good[1])
        poison_at = index % 3
        images = list(good)
        images.insert(poison_at, poison)
        base_us = int(time.time() * 1_000_000) + 1000
        records = []
        for offset, image in enumerate(images):
            record = {
                "awsRegion": self.endpoints.region,
                "eventID": str(uuid.uuid4()),
                "eventName": "INSERT" if offset == 0 else "MODIFY",
                "userIdentity": None,
                "recordFormat": "application/json",
                "tableName": self.names.table,
                "dynamodb": {
                    "ApproximateCreationDateTime": base_us + offset * 1000,
                    "ApproximateCreationDateTimePrecision": "MICROSECOND",
                    "Keys": keys,
                    "NewImage": image,
                    "SizeBytes": 100,
                },
                "eventSource": "aws:dynamodb",
            }
            records.append((image is good[1], record))
        self.rng.shuffle(records)
        response = self.endpoints.client("kinesis").put_records(
            StreamName=self.names.stream,
            Records=[
                {"Data": orjson.dumps(record), "PartitionKey": opaque_partition_key(keys)}
                for _, record in records
            ],
        )
        if response.get("FailedRecordCount"):
            raise RuntimeError(f"mixed batch {key}: PutRecords failed: {response['Records']}")
        for (newest_good, _), result in zip(records, response["Records"], strict=True):
            if newest_good:
                self.run_state.mixed_newest_good.append(str(result["SequenceNumber"]))
        if poison_at == len(good):
            self.run_state.poison_required.add(f"mixed:{key}")
        where = ("oldest", "middle", "newest")[poison_at]
        return f"mixed batch {key}: 2 good changes and a poison {where} in time, one PutRecords"

    def apply(self, fault: Fault, elapsed: float) -> None:
        kinesis = self.endpoints.client("kinesis")
        note: str | None
        if fault.kind == "kill9":
            note = self._kill9()
        elif fault.kind == "sigstop":
            note = self._sigstop()
        elif fault.kind == "stall":
            note = self._stall()
        elif fault.kind == "misconfigured":
            note = self._misconfigured()
        elif fault.kind == "mixed_batch":
            note = self._mixed_batch()
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
            note = split_shard(self.endpoints, self.names.stream, self.rng)
        elif fault.kind == "merge":
            note = merge_shards(self.endpoints, self.names.stream, self.rng)
        elif fault.kind == "outage":
            self.proxies.set_outage(True)
            self.outage_until = time.monotonic() + fault.duration_s
            timer = threading.Timer(fault.duration_s, self.proxies.set_outage, (False,))
            timer.daemon = True
            timer.start()
            note = f"replica sink outage {fault.duration_s:.0f}s"
        elif fault.kind == "poison_record":
            index = self.run_state.poison_records
            payload = f"chaos-poison-{index} not a change record"
            kinesis.put_record(
                StreamName=self.names.stream, Data=payload.encode(), PartitionKey=f"poison-{index}"
            )
            self.run_state.poison_required.add(f"record:{payload}")
            self.run_state.poison_records += 1
            note = "undecodable record"
        else:
            index = self.run_state.poison_items
            self.endpoints.client("dynamodb").put_item(
                TableName=self.names.table,
                Item=with_canary({"pk": {"S": f"{POISON_PREFIX}-{index}"}, "status": {"S": "NEW"}}),
            )
            self.run_state.poison_required.add(f"item:{POISON_PREFIX}-{index}")
            self.run_state.poison_items += 1
            note = "poison item"
        if note is None:
            return
        line = f"t={elapsed:5.1f}s {note}"
        self.run_state.faults_applied.append(line)
        say(line)

    # --- convergence and checks ---------------------------------------------------------

    def compare(self) -> tuple[SinkCheck, SinkCheck]:
        """The replica and the index against the table, by `consumer verify`'s code: straight
        to moto (no fault proxies), without the transform (it passes items unchanged, and
        refuses poison items, which the replica is meant to lack)."""
        env = _worker_environment(self.state, self.names, self.proxies, self.work_dir, self.mode)
        env["CONSUMER_AWS__ENDPOINT_DYNAMODB"] = self.state.moto_url
        del env["CONSUMER_PIPELINES__REPLICATION__ENDPOINT"]
        del env["CONSUMER_PIPELINES__REPLICATION__TRANSFORM"]

        def poison(pipeline: str, key: str) -> bool:
            return pipeline == "replication" and key.startswith(f"pk={POISON_PREFIX}")

        check = check_sinks(
            settings_from_environment(env), self.names.table, expected_missing=poison
        )
        replica = [line for line in check.lines if line.startswith("replica:")]
        search = [line for line in check.lines if line.startswith("search:")]
        return SinkCheck(replica, check.equal), SinkCheck(search, check.equal)

    def poison_found(self) -> tuple[set[str], int, list[str]]:
        """The required poisons in the DLQ, messages, and the good changes parked."""
        bodies = read_dlq(self.endpoints.client("sqs"), self.state_queue_url)
        found = {identity for body in bodies if (identity := poison_identity(body))}
        wrongly = [parked_description(body) for body in bodies if poison_identity(body) is None]
        return found & self.run_state.poison_required, len(bodies), wrongly

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
        expected_poison = self.run_state.poison_planted
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
            self.lease_watch.start()
            restarts = threading.Thread(target=self._restart_exited, daemon=True)
            restarts.start()
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
            self.restarts_stop.set()
            stop_problems = self.pool.stop_all(40.0)
            self.proxies.stop()
            self.lease_watch.stop_event.set()
            if self.lease_watch.is_alive():
                self.lease_watch.join(timeout=10)
        return self.result(writer, pump, stop_problems, time.monotonic() - started)

    def _restart_exited(self) -> None:
        while not self.restarts_stop.wait(1.0):
            for note in self.pool.restart_exited():
                self.run_state.faults_applied.append(note)
                say(note)

    def misconfigured_problems(self) -> list[str]:
        """Each misconfigured worker must exit non-zero by itself, with one error line and no
        traceback, and never own a lease (by the lease table and by its own log)."""
        problems: list[str] = []
        owners = self.lease_watch.owners_ever()
        for worker in (w for w in self.pool.workers if w.misconfigured):
            before = len(problems)
            code, after_s = self.run_state.misconfigured_exits.get(worker.worker_id, (None, 0.0))
            text = worker.log_path.read_text(errors="replace")
            lines = [line for line in text.splitlines() if line.strip()]
            # The one line on stderr (the JSON log carries it too, as worker.failed).
            errors = [line for line in lines if not line.startswith("{")]
            if code is None or code == 0:
                problems.append(f"{worker.worker_id} (wrong destination) did not fail: exit {code}")
            if "Traceback" in text or len(errors) != 1:
                problems.append(
                    f"{worker.worker_id} (wrong destination): {len(errors)} error lines"
                )
            if worker.worker_id in owners or '"lease.acquired"' in text:
                problems.append(f"{worker.worker_id} (wrong destination) took a lease")
            if len(problems) == before:
                say(f"{worker.worker_id} failed in {after_s:.1f}s: {errors[0][:200]}")
        return problems

    def lease_checks(self) -> tuple[ChaosResult, list[str]]:
        """The issue-15 checks: processing without the lease, takeover until records flow
        again, good changes parked, the newest good change of each mixed batch written."""
        shard_of = sequence_shards(self.endpoints, self.names.stream)
        applies = self.proxies.applies.applied if self.proxies.applies else []
        writes, unknown = shard_writes(applies, shard_of)
        log_events = read_acquisitions(self.pool.workers)
        # Kept for a look afterwards (--keep-dir): what the checks below were computed from.
        (self.work_dir / "replica-writes.log").write_text(
            "".join(f"{w.at:.6f} {w.worker_id} {w.shard} {w.sequence_number}\n" for w in writes)
        )
        (self.work_dir / "lease-table.log").write_text(
            "".join(
                f"{o.sent:.6f} {o.answered:.6f} {o.shard} {o.owner} {o.counter} {o.finished}\n"
                for o in self.lease_watch.seen
            )
        )
        verdicts = processing_without_lease(writes, self.lease_watch.seen, log_events)
        finished = {seen.shard for seen in self.lease_watch.seen if seen.finished}
        takeovers = takeover_processing(self.run_state.stoppages, writes, finished)
        written = {write.sequence_number for write in applies}
        skipped = [seq for seq in self.run_state.mixed_newest_good if seq not in written]
        misconfigured = self.misconfigured_problems()
        checks = ChaosResult(
            lost=0,
            mismatches=0,
            planned_duplicates=0,
            poison_found=0,
            poison_expected=0,
            takeovers_s=[],
            takeover_timeouts=0,
            processing_without_lease=verdicts.without_lease,
            takeover_processing_s=takeovers.seconds,
            takeover_processing_never=takeovers.never,
            takeover_processing_limit_s=TAKEOVER_PROCESSING_LIMIT_S,
            misconfigured_problems=len(misconfigured),
            mixed_newest_good_skipped=len(skipped),
            info={
                "replica_writes_seen": f"{len(applies)} ({unknown} without a known shard)",
                "lease_table_scans": f"{self.lease_watch.scans} ({self.lease_watch.errors} failed)",
                "writes_without_logged_acquisition": str(verdicts.no_acquisition),
                "processing_without_lease_max_late_s": f"{verdicts.max_late_s:.2f}",
                "takeover_shards_measured": f"{len(takeovers.seconds)} "
                f"(ended before flowing again: {takeovers.shards_ended})",
            },
        )
        details = [*verdicts.examples, *takeovers.details, *misconfigured]
        details += [f"mixed batch: newest good change {seq} was never written" for seq in skipped]
        return checks, details

    def result(
        self, writer: Writer, pump: BridgePump, stop_problems: list[str], elapsed: float
    ) -> ChaosResult:
        replica_lines, search_lines = self.compare()
        lost = sum(1 for line in replica_lines.lines if line.endswith(("is missing", "differs")))
        found, messages, wrongly_parked = self.poison_found()
        checks, check_details = self.lease_checks()
        duplicates = classify_duplicates(
            read_deliveries(self.work_dir / "deliveries"),
            self.pool.by_pid(),
            read_lease_events(self.pool.workers),
        )
        stats = pump.bridge.stats
        throttle, outage = self.proxies.throttle, self.proxies.outage
        info = {
            "seed": str(self.seed),
            "mode": f"{self.mode} {'short' if self.short else 'full'}",
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
            **checks.info,
            "elapsed_s": f"{elapsed:.0f}",
        }
        details = [*replica_lines.lines, *search_lines.lines, *duplicates.examples]
        details += [f"wrongly parked: {line}" for line in wrongly_parked]
        missing = sorted(self.run_state.poison_required - found)
        details += [f"poison not in the DLQ: {identity}" for identity in missing]
        details += check_details
        details += stop_problems
        for thread_error in (writer.error, pump.error):
            if thread_error is not None:
                details.append(f"thread error: {thread_error!r}")
        return ChaosResult(
            lost=lost + (1 if writer.error or pump.error else 0),
            mismatches=len(replica_lines.lines) + len(search_lines.lines),
            planned_duplicates=duplicates.planned,
            poison_found=len(found),
            poison_expected=self.run_state.poison_planted,
            takeovers_s=self.run_state.takeovers_s,
            takeover_timeouts=self.run_state.takeover_timeouts,
            wrongly_parked=len(wrongly_parked),
            processing_without_lease=checks.processing_without_lease,
            takeover_processing_s=checks.takeover_processing_s,
            takeover_processing_never=checks.takeover_processing_never,
            takeover_processing_limit_s=checks.takeover_processing_limit_s,
            enforce_takeover_limit=not self.short,
            misconfigured_problems=checks.misconfigured_problems,
            mixed_newest_good_skipped=checks.mixed_newest_good_skipped,
            info=info,
            details=details,
        )


def run_mode(seed: int, short: bool, mode: Mode, keep_dir: Path | None) -> ChaosResult:
    """One chaos run in one reader mode, on a local stack of its own."""
    with tempfile.TemporaryDirectory(prefix=f"chaos-{mode}-") as directory, ExitStack() as exits:
        work_dir = keep_dir / mode if keep_dir else Path(directory)
        stack = LocalStack(work_dir / "stack")
        exits.callback(stack.stop)
        state = stack.start()
        say(f"{mode}: local stack up (moto {state.moto_port}, kinesis-mock {state.kinesis_port})")
        endpoint = None
        if mode == "efo":
            # kinesis-mock refuses a new subscription to a shard while a dead owner's one is
            # held (ResourceInUse for minutes, seen here), where AWS lets a call 5 s after the
            # last successful one take over. The workers subscribe through the test suite's
            # SubscribeToShard stand-in that follows AWS's rules (tests/efo_server).
            from tests.efo_server import running_efo_server

            endpoint = exits.enter_context(running_efo_server(state.kinesis_url)).url
            say(f"efo: SubscribeToShard with AWS's rules at {endpoint}")
        return ChaosRun(state, work_dir, seed, short, mode, endpoint).execute()


def run_chaos(
    seed: int, short: bool, keep_dir: Path | None = None, modes: tuple[Mode, ...] = ("polling",)
) -> int:
    """Runs each mode in turn and prints its lines after `chaos_mode <mode>`.
    `keep_dir`: work there (logs, search index, delivery logs), one folder per mode, kept."""
    failed = False
    for mode in modes:
        result = run_mode(seed, short, mode, keep_dir)
        print(f"chaos_mode {mode}", flush=True)
        for line in result.lines():
            print(line, flush=True)
        failed = failed or bool(result.failures)
    return 1 if failed else 0
