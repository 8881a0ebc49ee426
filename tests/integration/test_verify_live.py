"""`consumer verify` while the service runs and changes keep arriving (updates, deletes,
inserts, with the bridge duplicating and reordering as the Kinesis destination may): every
difference it sees mid-flight is re-checked after the consumer's lag, so it reports no false
differences; then, with a change lost on purpose, it still finds that one."""

from __future__ import annotations

import random
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from consumer.local.bridge import BridgeOptions, DestinationBridge
from consumer.local.stack import LocalStackState
from tests.service_harness import Deployment
from tests.snapshot.world import ChangeWriter, order_item, spawn
from tests.verify.world import key, search_env, verify

pytestmark = pytest.mark.integration

EXISTING = 60


def test_verify_while_changes_arrive_reports_no_false_differences(
    local_stack: LocalStackState, unique_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = Deployment(local_stack, unique_name, shards=1)
    deployment.create()
    endpoints = deployment.endpoints
    dynamodb = endpoints.client("dynamodb")
    rng = random.Random(5)
    for order_id in range(EXISTING):
        dynamodb.put_item(TableName=deployment.table, Item=order_item(order_id, rng))
    env = search_env(tmp_path / "search", CONSUMER_TELEMETRY__LOG_LEVEL="warning")
    worker = spawn(
        [sys.executable, "-m", "consumer", "run"],
        deployment.environment(**env),
        tmp_path / "worker.log",
    )
    bridge = DestinationBridge(
        endpoints.client("dynamodbstreams"),
        endpoints.client("kinesis"),
        deployment.table,
        deployment.stream,
        endpoints.region,
        BridgeOptions(duplicate_rate=0.05, reorder_rate=0.1, seed=3),
    )
    done = threading.Event()
    pump = threading.Thread(target=bridge.run, args=(done, 0.05), daemon=True)
    writer = ChangeWriter(
        endpoints.client("dynamodb"), deployment.table, EXISTING, seed=9, pause_s=0.15
    )
    try:
        pump.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # the service has caught up with the prefill
            if len(deployment.replica_items()) >= EXISTING:
                break
            time.sleep(0.5)
        assert len(deployment.replica_items()) >= EXISTING, "the service never caught up"
        writer.start()
        time.sleep(1.0)
        changes_before = sum(writer.counts.values())
        code, report, err = verify(deployment, monkeypatch, env, "--recheck-after-s", "3")
        changes_during = sum(writer.counts.values()) - changes_before
        assert changes_during > 20, writer.counts  # changes really arrived meanwhile
        assert code == 0, (report, err)
        for name in ("replication", "search"):
            tally = report["pipelines"][name]
            assert tally["missing"] == tally["stale"] == tally["extra"] == 0, (name, tally)
            assert tally["equal"] > EXISTING // 2, tally

        # A change the stream never carries (written straight into the replica): found.
        client = endpoints.client("dynamodb")
        stored = client.get_item(
            TableName=deployment.replica, Key={"pk": {"S": key(999_999)}}, ConsistentRead=True
        )
        assert "Item" not in stored
        client.put_item(
            TableName=deployment.replica,
            Item={"pk": {"S": key(999_999)}, "_cdc_version": {"N": "1"}},
        )
        code, report, err = verify(
            deployment, monkeypatch, env, "--recheck-after-s", "3", "--pipelines", "replication"
        )
        assert code == 1, (report, err)
        assert report["pipelines"]["replication"]["first"]["extra"] == [f"pk={key(999_999)}"]
    finally:
        writer.stop()
        done.set()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except Exception:
            worker.kill()
        pump.join(timeout=30)
