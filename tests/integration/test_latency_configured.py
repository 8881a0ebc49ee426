"""`consumer compare latency --config FILE --table NAME --yes`, the path meant for AWS, run
against the local stack's endpoints (the test plays DynamoDB's part: it runs the destination
bridge that AWS would not need). Each mode runs under its own application and cleans up after
itself: probe items, the per-mode lease tables and the EFO consumer are gone afterwards, and
the service's own leases are never touched."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from consumer.local.bridge import DestinationBridge
from consumer.local.stack import LocalStackState
from tests.service_harness import Deployment

pytestmark = pytest.mark.integration

PROBES = 10


def config_file(app: Deployment, path: Path) -> Path:
    state = app.state
    path.write_text(
        f"""
application = "{app.name}"
checkpoint_interval_s = 1.0

[aws]
region = "us-east-1"
endpoint_kinesis = "{state.kinesis_url}"
endpoint_dynamodb = "{state.moto_url}"
endpoint_dynamodbstreams = "{state.moto_url}"
endpoint_s3 = "{state.moto_url}"
endpoint_sqs = "{state.moto_url}"
access_key_id = "000000000000"
secret_access_key = "local"

[stream]
name = "{app.stream}"

[leases]
heartbeat_interval_s = 0.5
failover_s = 3
take_interval_s = 0.5

[pipelines.replication]
enabled = true
table = "{app.replica}"

[dlq]
queue_url = "{app.queue_url}"
"""
    )
    return path


def test_the_configured_path_measures_and_cleans_up(
    local_stack: LocalStackState, unique_name: str, tmp_path: Path
) -> None:
    app = Deployment(local_stack, unique_name, shards=2)
    app.create()
    endpoints = app.endpoints
    bridge = DestinationBridge(
        endpoints.client("dynamodbstreams"),
        endpoints.client("kinesis"),
        app.table,
        app.stream,
        endpoints.region,
    )
    stop = threading.Event()
    pump = threading.Thread(target=bridge.run, args=(stop, 0.2), daemon=True)
    pump.start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "consumer", "compare", "latency",
             "--config", str(config_file(app, tmp_path / "settings.toml")),
             "--table", app.table, "--yes", "--modes", "efo,streams",
             "--changes", str(PROBES), "--json"],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )  # fmt: skip
    finally:
        stop.set()
        pump.join(timeout=30)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout)
    assert data["environment"] == "aws" and data["ok"] is True
    assert [mode["mode"] for mode in data["modes"]] == ["efo", "streams"]
    for mode in data["modes"]:
        (sink,) = mode["sinks"]
        assert (sink["sink"], sink["applied"], sink["missing"]) == ("replication", PROBES, 0)

    notes = data["notes"]
    deleted = [note for note in notes if note.startswith("cleanup: deleted ") and "probe" in note]
    (deleted_probes,) = deleted
    written = int(deleted_probes.split(" of ")[1].split()[0])
    assert written >= 2 * PROBES
    assert deleted_probes == f"cleanup: deleted {written} of {written} probe items"
    assert f"cleanup: deleted lease table {unique_name}-latency-efo-leases" in notes
    assert f"cleanup: deleted lease table {unique_name}-latency-streams-leases" in notes
    assert f"cleanup: deregistered EFO consumer {unique_name}-latency-efo" in notes

    assert not [item for item in app.source_items() if "probe_tag" in item]
    tables = endpoints.client("dynamodb").list_tables()["TableNames"]
    assert not [table for table in tables if table.startswith(f"{unique_name}-latency")]
    assert f"{unique_name}-leases" not in tables  # the service's own leases: untouched
    kinesis = endpoints.client("kinesis")
    arn = kinesis.describe_stream_summary(StreamName=app.stream)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    consumers = kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]
    assert [c["ConsumerName"] for c in consumers if c["ConsumerStatus"] != "DELETING"] == []
