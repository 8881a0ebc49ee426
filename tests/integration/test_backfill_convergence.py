"""`consumer backfill` converges: a table that held items before its stream existed, changes
that keep coming while the backfill runs (updates, deletes, inserts of keys the scan has passed
and of keys it has not reached), the live service applying the stream, and a backfill process
killed with SIGKILL half way and started again. At the end the replica and the search index
equal the table (checked with `consumer verify`'s code, consumer.verify.check)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from consumer.local.bridge import BridgeOptions, DestinationBridge
from consumer.local.stack import LocalStackState
from consumer.verify.check import check_sinks, settings_from_environment
from tests.service_harness import Deployment
from tests.snapshot.world import (
    ROOT,
    ChangeWriter,
    create_world,
    snapshot_parts,
    spawn,
)

EXISTING = 400


def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _committed(dynamodb: Any, lease_table: str) -> int:
    return sum(int(item["items"]["N"]) for item in snapshot_parts(dynamodb, lease_table))


def _log(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def converge(
    local_stack: LocalStackState,
    name: str,
    tmp_path: Path,
    source_args: list[str],
    runner: list[str] | None = None,
    pitr: bool = False,
) -> None:
    deployment = Deployment(local_stack, name, shards=2)
    create_world(deployment, EXISTING)
    endpoints = deployment.endpoints
    dynamodb = endpoints.client("dynamodb")
    if pitr:
        dynamodb.update_continuous_backups(
            TableName=deployment.table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    bucket = f"{name}-exports"
    endpoints.client("s3").create_bucket(Bucket=bucket)
    search_dir = tmp_path / "search"
    env = deployment.environment(
        CONSUMER_PIPELINES__SEARCH__ENABLED="true",
        CONSUMER_PIPELINES__SEARCH__LOCAL_PATH=str(search_dir),
        CONSUMER_BACKFILL__LEASE_S="3",
        CONSUMER_BACKFILL__EXPORT_BUCKET=bucket,
        CONSUMER_TELEMETRY__LOG_LEVEL="info",
    )
    lease_table = f"{name}-leases"
    worker = spawn([sys.executable, "-m", "consumer", "run"], env, tmp_path / "worker.log")
    bridge = DestinationBridge(
        endpoints.client("dynamodbstreams"),
        endpoints.client("kinesis"),
        deployment.table,
        deployment.stream,
        endpoints.region,
        BridgeOptions(duplicate_rate=0.05, reorder_rate=0.1, seed=5),
    )
    done = threading.Event()
    pump = threading.Thread(target=bridge.run, args=(done,), daemon=True)
    writer = ChangeWriter(endpoints.client("dynamodb"), deployment.table, EXISTING)
    try:
        _wait(
            lambda: bool(deployment.lease_items()) if _exists(dynamodb, lease_table) else False,
            60,
            "the service's shard leases",
        )
        pump.start()
        writer.start()
        args = (runner or [sys.executable, "-m", "consumer", "backfill"]) + [
            "--table",
            deployment.table,
            *source_args,
            "--pipelines",
            "replication,search",
            "--workers",
            "2",
            "--progress",
            "log",
        ]
        first = spawn(args, env, tmp_path / "backfill-1.log")
        _wait(
            lambda: _committed(dynamodb, lease_table) >= EXISTING // 4 or first.poll() is not None,
            90,
            "the backfill to commit a quarter of the table",
        )
        assert first.poll() is None, (
            f"backfill ended before the kill:\n{_log(tmp_path / 'backfill-1.log')}"
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        parts = snapshot_parts(dynamodb, lease_table)
        assert not all(part["finished"]["BOOL"] for part in parts), "killed too late"
        killed_at = _committed(dynamodb, lease_table)
        second = spawn(args, env, tmp_path / "backfill-2.log")
        assert second.wait(timeout=180) == 0, _log(tmp_path / "backfill-2.log")
        summary = _log(tmp_path / "backfill-2.log")
        assert "backfill: OK" in summary, summary
        assert killed_at < EXISTING
        writer.stop()
        time.sleep(1.5)  # moto's stream shows the last changes
        done.set()
        pump.join(timeout=60)
        while bridge.pump():
            pass
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, _log(tmp_path / "worker.log")
        # What the stopped worker had not applied yet: a fresh worker drains it.
        drain = subprocess.run(
            [sys.executable, "-m", "consumer", "run", "--until-idle", "3"],
            env={**__import__("os").environ, **env},
            cwd=ROOT,
            capture_output=True,
            timeout=120,
        )
        assert drain.returncode == 0, drain.stdout[-2000:]
    finally:
        writer.stop()
        done.set()
        for process in [worker]:
            if process.poll() is None:
                process.kill()
    source = deployment.source_items()
    check = check_sinks(settings_from_environment(env), deployment.table)
    assert check.lines == [], check.lines[:10]
    assert check.equal == {"replication": len(source), "search": len(source)}
    # The workload did all it should: deletes and updates of items the backfill also read.
    assert writer.counts["delete"] > 10 and writer.counts["update"] > 10, writer.counts
    # Items nobody changed since before the stream existed reached the sinks only by backfill.
    assert len(source) > EXISTING // 2


def _exists(dynamodb: Any, table: str) -> bool:
    try:
        dynamodb.describe_table(TableName=table)
        return True
    except dynamodb.exceptions.ResourceNotFoundException:
        return False


def test_scan_backfill_converges_with_changes_during_it_and_a_kill_9(
    local_stack: LocalStackState, unique_name: str, tmp_path: Path
) -> None:
    converge(
        local_stack,
        unique_name,
        tmp_path,
        ["--source", "scan", "--segments", "4", "--max-read-units", "6", "--page-items", "10"],
    )


def test_export_backfill_converges_with_changes_during_it_and_a_kill_9(
    local_stack: LocalStackState, unique_name: str, tmp_path: Path
) -> None:
    converge(
        local_stack,
        unique_name,
        tmp_path,
        ["--source", "export"],
        runner=[sys.executable, "-m", "tests.snapshot.backfill_with_export_double"],
        pitr=True,
    )
