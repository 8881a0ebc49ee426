"""`consumer demo`: the real service end to end on the embedded local stack.

Creates a source table holding orders from before its stream, then turns the stream on; creates
the Kinesis stream, replica table, audit bucket and DLQ; starts `consumer run` workers (EFO, all
pipelines) sharing the shards; writes order changes while the destination bridge copies them
into Kinesis with duplicates and reorderings, and `consumer backfill` (parallel Scan) brings the
older orders to the replica and the search index; once the workers are idle, checks the replica
and the index against the table and the audit trail against the changes: one summary line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
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
from consumer.local.stack import LocalStack, LocalStackState
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


def _consumer(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`consumer ARGS` in a child process, its output in `log_path`."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "consumer", *args],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _start_workers(
    count: int, env: dict[str, str], idle_s: float, logs: Path
) -> list[subprocess.Popen[bytes]]:
    args = ["run", "--until-idle", str(idle_s)]
    return [_consumer(args, env, logs / f"worker-{index + 1}.log") for index in range(count)]


def _start_backfill(env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    args = ["backfill", "--table", TABLE, "--source", "scan", "--pipelines", "replication,search"]
    return _consumer([*args, "--segments", "4", "--progress", "log"], env, logs / "backfill.log")


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


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=40)
        except subprocess.TimeoutExpired:
            worker.kill()


def _print_failure(what: str, log_path: Path) -> None:
    """`what` on stderr, with the last lines of its log."""
    print(f"demo: {what}:", file=sys.stderr)
    for line in log_path.read_text(errors="replace").splitlines()[-15:]:
        print(f"  {line}", file=sys.stderr)


def run_demo(options: DemoOptions) -> int:
    with tempfile.TemporaryDirectory(prefix="consumer-demo-") as work:
        work_dir = Path(work)
        _say("starting the local stack (moto server + kinesis-mock)")
        with LocalStack(work_dir / "stack") as stack:
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
            pump = threading.Thread(target=bridge.run, args=(done, 0.2), daemon=True)
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
                    _print_failure("backfill failed", work_dir / "backfill.log")
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
                log = work_dir / f"worker-{index + 1}.log"
                _print_failure(f"worker {index + 1} exited with {workers[index].returncode}", log)

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
