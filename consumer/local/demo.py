"""`consumer demo`: the real service end to end on the embedded local stack.

Brings the stack up; creates the source table holding orders written before its stream
existed, then turns the stream on; creates the Kinesis stream, the replica table, the audit
bucket and the dead-letter queue; starts worker processes
(`consumer run`, enhanced fan-out, all pipelines) that share the shards through the lease
table; writes sample order changes while the destination bridge copies them into Kinesis with
duplicates and reorderings injected, as AWS may, and meanwhile `consumer backfill` (parallel
Scan) brings the orders from before the stream to the replica and the search index; waits
until the workers are idle; then checks
that the replica and the search index equal the source table and that every change is in the
audit trail, and prints one summary line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumer.local.bridge import BridgeOptions, BridgeStats, DestinationBridge
from consumer.local.resources import audit_event_ids, create_replica, source_items
from consumer.local.sample_orders import (
    TTL_ATTRIBUTE,
    create_kinesis_stream,
    create_table_without_stream,
    enable_stream,
    write_order_changes,
    write_preexisting_orders,
)
from consumer.local.stack import LocalStackState, running_local_stack
from consumer.verify.check import check_sinks, settings_from_environment

APPLICATION = "orders-demo"
TABLE = "orders"
STREAM = "orders-cdc"
REPLICA = "orders-replica"
BUCKET = "orders-audit"
QUEUE = "orders-dlq"


@dataclass(frozen=True)
class DemoOptions:
    changes: int = 2000
    preexisting: int = 300
    shards: int = 4
    workers: int = 2
    duplicate_rate: float = 0.05
    reorder_rate: float = 0.1
    seed: int = 7
    idle_s: float = 8.0
    timeout_s: float = 600.0


_STARTED = time.monotonic()


def _say(message: str) -> None:
    print(f"demo: [{time.monotonic() - _STARTED:5.1f}s] {message}", flush=True)


def worker_environment(stack: LocalStackState, search_dir: Path) -> dict[str, str]:
    return {
        "CONSUMER_APPLICATION": APPLICATION,
        "CONSUMER_STREAM__NAME": STREAM,
        "CONSUMER_STREAM__MODE": "efo",
        "CONSUMER_AWS__REGION": "us-east-1",
        "CONSUMER_AWS__ENDPOINT_KINESIS": stack.kinesis_url,
        "CONSUMER_AWS__ENDPOINT_DYNAMODB": stack.moto_url,
        "CONSUMER_AWS__ENDPOINT_DYNAMODBSTREAMS": stack.moto_url,
        "CONSUMER_AWS__ENDPOINT_S3": stack.moto_url,
        "CONSUMER_AWS__ENDPOINT_SQS": stack.moto_url,
        "CONSUMER_AWS__ACCESS_KEY_ID": "000000000000",
        "CONSUMER_AWS__SECRET_ACCESS_KEY": "local",
        "CONSUMER_PIPELINES__REPLICATION__ENABLED": "true",
        "CONSUMER_PIPELINES__REPLICATION__TABLE": REPLICA,
        "CONSUMER_PIPELINES__AUDIT__ENABLED": "true",
        "CONSUMER_PIPELINES__AUDIT__BUCKET": BUCKET,
        "CONSUMER_PIPELINES__AUDIT__MAX_AGE_S": "2",
        "CONSUMER_PIPELINES__SEARCH__ENABLED": "true",
        "CONSUMER_PIPELINES__SEARCH__LOCAL_PATH": str(search_dir),
        "CONSUMER_DLQ__QUEUE_URL": f"{stack.moto_url}/000000000000/{QUEUE}",
        "CONSUMER_TELEMETRY__HEALTH_PORT": "0",
        "CONSUMER_TELEMETRY__EMF": "false",
        "CONSUMER_TELEMETRY__LOG_LEVEL": "warning",
        "CONSUMER_LEASES__HEARTBEAT_INTERVAL_S": "1",
        "CONSUMER_LEASES__TAKE_INTERVAL_S": "1",
        "CONSUMER_CHECKPOINT_INTERVAL_S": "1",
    }


def _start_workers(
    count: int, env: dict[str, str], idle_s: float, logs: Path
) -> list[subprocess.Popen[bytes]]:
    workers = []
    for index in range(count):
        log = (logs / f"worker-{index + 1}.log").open("wb")
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "consumer", "run", "--until-idle", str(idle_s)],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()
    return workers


def _start_backfill(env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    log = (logs / "backfill.log").open("wb")
    args = [sys.executable, "-m", "consumer", "backfill", "--table", TABLE, "--source", "scan"]
    args += ["--pipelines", "replication,search", "--segments", "4", "--progress", "log"]
    process = subprocess.Popen(
        args, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    return process


def _backfilled(path: Path) -> int | None:
    """N from the backfill's summary line (`... backfilled=N ...`)."""
    for line in reversed(path.read_text(errors="replace").splitlines()):
        if line.startswith("backfill: OK"):
            for field in line.split():
                if field.startswith("backfilled="):
                    return int(field.removeprefix("backfilled="))
    return None


def _wait_for_leases(endpoints: Any, deadline: float) -> None:
    """The workers have created the lease table (a backfill needs it)."""
    dynamodb = endpoints.client("dynamodb")
    while time.monotonic() < deadline:
        try:
            if dynamodb.scan(TableName=f"{APPLICATION}-leases", Limit=5)["Items"]:
                return
        except dynamodb.exceptions.ResourceNotFoundException:
            pass
        time.sleep(0.5)
    raise TimeoutError("the workers did not create their leases")


def _pump_until(bridge: DestinationBridge, done: threading.Event) -> None:
    bridge.run(done, interval_s=0.2)


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=40)
        except subprocess.TimeoutExpired:
            worker.kill()


def _tail(path: Path, lines: int = 15) -> Iterator[str]:
    yield from path.read_text(errors="replace").splitlines()[-lines:]


def run_demo(options: DemoOptions) -> int:
    with tempfile.TemporaryDirectory(prefix="consumer-demo-") as work:
        work_dir = Path(work)
        _say("starting the local stack (moto server + kinesis-mock)")
        with running_local_stack(work_dir / "stack") as stack:
            endpoints = stack.endpoints()
            dynamodb = endpoints.client("dynamodb")
            kinesis = endpoints.client("kinesis")
            create_table_without_stream(dynamodb, TABLE)
            write_preexisting_orders(dynamodb, TABLE, options.preexisting)
            enable_stream(dynamodb, TABLE)
            _say(f"table {TABLE} holds {options.preexisting} orders written before its stream")
            create_kinesis_stream(kinesis, STREAM, options.shards)
            create_replica(endpoints, REPLICA)
            endpoints.client("s3").create_bucket(Bucket=BUCKET)
            endpoints.client("sqs").create_queue(QueueName=QUEUE)
            _say(
                f"created table {TABLE} (with its stream), stream {STREAM} ({options.shards} "
                f"shards), replica {REPLICA}, bucket {BUCKET}, queue {QUEUE}"
            )
            search_dir = work_dir / "search"
            workers = _start_workers(
                options.workers, worker_environment(stack, search_dir), options.idle_s, work_dir
            )
            _say(f"started {options.workers} workers (consumer run, EFO, audit+search+replication)")
            bridge = DestinationBridge(
                endpoints.client("dynamodbstreams"),
                kinesis,
                TABLE,
                STREAM,
                endpoints.region,
                BridgeOptions(
                    duplicate_rate=options.duplicate_rate,
                    reorder_rate=options.reorder_rate,
                    seed=options.seed,
                    ttl_attribute=TTL_ATTRIBUTE,
                ),
            )
            done = threading.Event()
            pump = threading.Thread(target=_pump_until, args=(bridge, done), daemon=True)
            pump.start()
            backfill: subprocess.Popen[bytes] | None = None
            try:
                _wait_for_leases(endpoints, time.monotonic() + 60)
                backfill = _start_backfill(worker_environment(stack, search_dir), work_dir)
                _say("started consumer backfill --source scan (replication, search)")
                counts = write_order_changes(dynamodb, TABLE, options.changes, seed=options.seed)
                _say(
                    f"wrote {counts.total} changes: {counts.inserts} inserts, {counts.modifies} "
                    f"modifies, {counts.removes} deletes, {counts.ttl_deletes} TTL-style deletes"
                )
                done.set()
                pump.join()
                stats: BridgeStats = bridge.stats
                _say(
                    f"bridged {stats.changes} changes as {stats.written} Kinesis records: "
                    f"{stats.duplicates} duplicates and {stats.reorderings} reorderings injected"
                )
                if backfill.wait(timeout=options.timeout_s) != 0:
                    print("demo: backfill failed:", file=sys.stderr)
                    for line in _tail(work_dir / "backfill.log"):
                        print(f"  {line}", file=sys.stderr)
                backfilled = _backfilled(work_dir / "backfill.log")
                _say(f"backfill applied {backfilled} items from before the stream")
                _say(f"waiting for the workers to go idle ({options.idle_s:g} s without records)")
                deadline = time.monotonic() + options.timeout_s
                for worker in workers:
                    worker.wait(timeout=max(1.0, deadline - time.monotonic()))
            except BaseException:
                _stop_workers(workers)
                if backfill is not None and backfill.poll() is None:
                    backfill.kill()
                raise
            failed = [i for i, w in enumerate(workers) if w.returncode != 0]
            for index in failed:
                code = workers[index].returncode
                print(f"demo: worker {index + 1} exited with {code}:", file=sys.stderr)
                for line in _tail(work_dir / f"worker-{index + 1}.log"):
                    print(f"  {line}", file=sys.stderr)

            source = source_items(endpoints, TABLE)
            # The sinks against the table: the same code as `consumer verify`.
            settings = settings_from_environment(worker_environment(stack, search_dir))
            check = check_sinks(settings, TABLE)
            audited = audit_event_ids(endpoints, BUCKET)
            parked = _queue_depth(endpoints)
            mismatches = list(check.lines)
            missing_audit = stats.changes - len(audited)
            if missing_audit:
                mismatches.append(f"audit: {missing_audit} changes missing from the audit trail")
    for line in mismatches[:20]:
        print(f"demo: mismatch: {line}", file=sys.stderr)
    ok = not failed and not mismatches and parked == 0 and backfilled is not None
    print(
        f"demo: {'OK' if ok else 'FAILED'} changes={counts.total} audit={len(audited)} "
        f"search={check.equal.get('search', 0)} replica={check.equal.get('replication', 0)} "
        f"backfilled={backfilled} mismatches={len(mismatches)} "
        f"(table items={len(source)}, injected duplicates={stats.duplicates} "
        f"reorderings={stats.reorderings}, dlq={parked}, {time.monotonic() - _STARTED:.0f} s)"
    )
    return 0 if ok else 1


def _queue_depth(endpoints: Any) -> int:
    sqs = endpoints.client("sqs")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])
