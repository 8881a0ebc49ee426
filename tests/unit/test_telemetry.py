"""Metrics documents (CloudWatch EMF, Prometheus) and the health endpoints."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import orjson
import pytest

from consumer.cli import main
from consumer.telemetry.health import HealthServer, Readiness
from consumer.telemetry.metrics import Snapshot, emf_line, prometheus_text


def test_emf_line_is_a_cloudwatch_embedded_metric_document() -> None:
    previous = Snapshot(records_total=100, parked_total=1, lease_table_writes_total=10)
    current = Snapshot(
        records_total=700,
        changes_total=650,
        parked_total=3,
        leases_held=4,
        lease_table_writes_total=34,
        millis_behind_latest={"shardId-1": 250, "shardId-2": 900},
        change_age_ms_max=1200,
        sink_seconds_total={"replication": 2.5},
        sink_failures_total={"replication": 2},
    )
    document = orjson.loads(emf_line("NS", "orders", 1_700_000_000_000, current, previous, 60))
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert document["_aws"]["Timestamp"] == 1_700_000_000_000
    assert directive["Namespace"] == "NS"
    assert directive["Dimensions"] == [["Application"]]
    names = {metric["Name"] for metric in directive["Metrics"]}
    assert {
        "RecordsPerSecond",
        "MillisBehindLatest",
        "ParkedRecords",
        "LeasesHeld",
        "LeaseTableWrites",
        "ChangeAgeMillis",
        "SinkSeconds_replication",
        "SinkFailures_replication",
    } <= names
    for name in names:  # every declared metric has a value at the top level
        assert isinstance(document[name], int | float)
    assert document["Application"] == "orders"
    assert document["RecordsPerSecond"] == 10.0
    assert document["ParkedRecords"] == 2
    assert document["LeaseTableWrites"] == 24
    assert document["MillisBehindLatest"] == 900


def test_prometheus_text_has_one_sample_per_line_with_labels() -> None:
    text = prometheus_text(
        "orders", Snapshot(records_total=5, millis_behind_latest={"shardId-1": 7})
    )
    lines = text.strip().splitlines()
    assert 'consumer_records_total{application="orders"} 5' in lines
    assert 'consumer_millis_behind_latest{application="orders",shard="shardId-1"} 7' in lines


async def test_health_server_answers_alive_and_ready_or_not() -> None:
    state = {"ready": False}
    server = HealthServer(
        0,
        lambda: Readiness(state["ready"], "ok" if state["ready"] else "starting", {}),
        host="127.0.0.1",
    )
    await server.start()
    try:
        port = server.bound_port
        base = f"http://127.0.0.1:{port}"

        def get(path: str) -> tuple[int, dict[str, object]]:
            try:
                with urllib.request.urlopen(base + path, timeout=5) as response:
                    return response.status, orjson.loads(response.read())
            except urllib.error.HTTPError as error:
                return error.code, orjson.loads(error.read())

        assert await asyncio.to_thread(get, "/healthz") == (200, {"status": "alive"})
        status, body = await asyncio.to_thread(get, "/readyz")
        assert status == 503 and body["reason"] == "starting"
        assert await asyncio.to_thread(main, ["health", "--port", str(port)]) == 1
        assert await asyncio.to_thread(main, ["health", "--live", "--port", str(port)]) == 0
        state["ready"] = True
        assert (await asyncio.to_thread(get, "/readyz"))[0] == 200
        assert await asyncio.to_thread(main, ["health", "--port", str(port)]) == 0
    finally:
        await server.aclose()


def test_health_command_fails_clearly_when_nothing_listens(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["health", "--port", str(port), "--timeout", "1"]) == 1
    assert "is not answering" in capsys.readouterr().err
