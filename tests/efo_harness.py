"""Helpers for `consumer run` tests in EFO mode: writing distinct items through the destination
bridge, waiting for the replica, reading the workers' JSON logs, resharding."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from consumer.local.bridge import BridgeOptions, DestinationBridge
from tests.service_harness import Deployment
from tests.stack_helpers import wait_stream_active


def bridge_for(app: Deployment) -> DestinationBridge:
    """One bridge for the whole test: each pump moves only the changes made since the last."""
    endpoints = app.endpoints
    return DestinationBridge(
        endpoints.client("dynamodbstreams"),
        endpoints.client("kinesis"),
        app.table,
        app.stream,
        endpoints.region,
        BridgeOptions(),
    )


def insert_items(app: Deployment, bridge: DestinationBridge, prefix: str, count: int) -> set[str]:
    """Inserts `count` new items (one INSERT each, so a lost record is a missing item) and
    moves them into the stream."""
    dynamodb = app.endpoints.client("dynamodb")
    keys = {f"{prefix}-{n:04d}" for n in range(count)}
    for key in sorted(keys):
        dynamodb.put_item(TableName=app.table, Item={"pk": {"S": key}, "n": {"N": "1"}})
    while bridge.pump():
        pass
    return keys


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Polls `condition` every 0.2 s; returns the seconds it took, or fails naming `what`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout_s} s")


def replica_keys(app: Deployment) -> set[str]:
    return {item["pk"]["S"] for item in app.replica_items()}


def owners(app: Deployment) -> dict[str, str]:
    """Shard -> lease owner (an empty string when nobody holds it)."""
    try:
        items = app.lease_items()
    except Exception:  # the lease table may not exist yet
        return {}
    return {item["leaseKey"]["S"]: item.get("leaseOwner", {}).get("S", "") for item in items}


def checkpoints(app: Deployment) -> dict[str, str]:
    return {item["leaseKey"]["S"]: item["checkpoint"]["S"] for item in app.lease_items()}


def reshard(app: Deployment, change: Callable[[Any], None]) -> None:
    kinesis = app.endpoints.client("kinesis")
    change(kinesis)
    wait_stream_active(kinesis, app.stream)


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> list[dict[str, Any]]:
    """SIGTERM every worker still running; returns all their JSON log lines."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    lines: list[dict[str, Any]] = []
    for worker in workers:
        output, _ = worker.communicate(timeout=60)
        for line in output.decode(errors="replace").splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
    return lines


def first_time(logs: list[dict[str, Any]], event: str, shard_id: str) -> datetime | None:
    times = [
        datetime.fromisoformat(line["timestamp"])
        for line in logs
        if line.get("event") == event and line.get("shard_id") == shard_id
    ]
    return min(times) if times else None
