"""`consumer run` as ECS runs it: health endpoints, metrics, a clean SIGTERM drain within the
stop timeout, and one clear line for the errors a user can fix."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request

import orjson
import pytest
from botocore.exceptions import ClientError

from consumer.local.sample_orders import write_order_changes
from consumer.local.stack import LocalStackState
from tests.service_harness import Deployment, by_key

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, timeout_s: float = 60) -> bytes:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bytes(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_health_metrics_and_a_graceful_sigterm(
    local_stack: LocalStackState, unique_name: str
) -> None:
    app = Deployment(local_stack, unique_name)
    app.create()
    write_order_changes(app.endpoints.client("dynamodb"), app.table, 60, seed=2)
    app.bridge()
    health, metrics = free_port(), free_port()
    worker = app.spawn_worker(
        CONSUMER_TELEMETRY__HEALTH_PORT=str(health),
        CONSUMER_TELEMETRY__PROMETHEUS_PORT=str(metrics),
        CONSUMER_TELEMETRY__EMF="true",
        CONSUMER_TELEMETRY__METRICS_INTERVAL_S="1",
    )
    try:
        assert orjson.loads(wait_for(f"http://127.0.0.1:{health}/healthz")) == {"status": "alive"}
        ready = orjson.loads(wait_for(f"http://127.0.0.1:{health}/readyz"))
        assert ready["ready"] is True
        deadline = time.monotonic() + 60
        while by_key(app.replica_items()) != by_key(app.source_items()):
            assert time.monotonic() < deadline, "the replica never caught up"
            time.sleep(0.5)
        text = wait_for(f"http://127.0.0.1:{metrics}/metrics").decode()
        assert "consumer_records_total" in text
        assert "consumer_leases_held" in text
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=40)[0].decode()
        stopped_in = time.monotonic() - started
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, output[-2000:]
    assert stopped_in < 30
    lines = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
    events = [line.get("event") for line in lines]
    assert "worker.signal" in events and "worker.stopped" in events
    assert any("_aws" in line for line in lines), "no EMF metric line was written"
    # The leases were handed back with their final checkpoints.
    for lease in app.lease_items():
        assert "leaseOwner" not in lease, lease
        assert lease["checkpoint"]["S"] != "TRIM_HORIZON"


def test_a_missing_stream_is_one_clear_line(local_stack: LocalStackState, unique_name: str) -> None:
    app = Deployment(local_stack, unique_name)
    env = app.environment(CONSUMER_STREAM__NAME="no-such-stream")
    import os

    result = subprocess.run(
        [sys.executable, "-m", "consumer", "run", "--until-idle", "1"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("consumer:")]
    assert len(errors) == 1
    assert "ResourceNotFoundException" in errors[0]


def test_invalid_settings_exit_2_naming_each(local_stack: LocalStackState) -> None:
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith("CONSUMER_")}
    env.update({"CONSUMER_STREAM__NAME": "s", "CONSUMER_STREAM__POLLING_INTERVAL_S": "9"})
    result = subprocess.run(
        [sys.executable, "-m", "consumer", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "stream.polling_interval_s" in result.stderr


def test_an_unreachable_endpoint_is_one_clear_line(unique_name: str) -> None:
    import os

    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONSUMER_")}
    env.update(
        {
            "CONSUMER_STREAM__NAME": "s",
            "CONSUMER_AWS__ENDPOINT_KINESIS": f"http://127.0.0.1:{port}",
            "CONSUMER_AWS__ACCESS_KEY_ID": "x",
            "CONSUMER_AWS__SECRET_ACCESS_KEY": "y",
            "CONSUMER_TELEMETRY__HEALTH_PORT": "0",
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "consumer", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot reach an AWS endpoint" in result.stderr


@pytest.mark.parametrize("delay_s", [0.25, 0.6])
def test_a_sigterm_right_after_start_is_a_graceful_stop(
    local_stack: LocalStackState, unique_name: str, delay_s: float
) -> None:
    """Issue 21: a SIGTERM ~0.2 s after start killed the worker with -15 (Python's default
    action, before the event loop's handlers were installed). Held from the CLI's first line
    on; only the interpreter's own start (a few tens of ms) is before that."""
    app = Deployment(local_stack, unique_name)
    app.create()
    worker = app.spawn_worker()
    try:
        time.sleep(delay_s)
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=60)[0].decode()
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, output[-2000:]
    assert "worker.signal" in output


def _run_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "consumer", "run", "--until-idle", "1"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.parametrize(
    ("setting", "variables"),
    [
        (
            "pipelines.replication.table",
            {"CONSUMER_PIPELINES__REPLICATION__TABLE": "no-such-replica"},
        ),
        (
            "pipelines.audit.bucket",
            {
                "CONSUMER_PIPELINES__AUDIT__ENABLED": "true",
                "CONSUMER_PIPELINES__AUDIT__BUCKET": "no-such-bucket",
            },
        ),
        ("dlq.queue_url", {"CONSUMER_DLQ__QUEUE_URL": "QUEUE/000000000000/no-such-queue"}),
        (
            "pipelines.search",
            {  # port 9 (discard) on loopback: nothing listens, the connection is refused
                "CONSUMER_PIPELINES__SEARCH__ENABLED": "true",
                "CONSUMER_PIPELINES__SEARCH__ENDPOINT": "http://127.0.0.1:9",
                "CONSUMER_PIPELINES__SEARCH__AUTH": "none",
            },
        ),
        (
            "stream.dynamodb_stream_arn",
            {
                "CONSUMER_STREAM__MODE": "streams",
                "CONSUMER_STREAM__DYNAMODB_STREAM_ARN": "arn:aws:dynamodb:us-east-1:"
                "000000000000:table/nope/stream/2026-01-01T00:00:00.000",
            },
        ),
        (
            "stream.arn",
            {
                "CONSUMER_STREAM__NAME": "",
                "CONSUMER_STREAM__ARN": "arn:aws:kinesis:us-east-1:000000000000:stream/nope",
            },
        ),
    ],
)
def test_a_missing_destination_is_one_line_before_any_lease(
    local_stack: LocalStackState, unique_name: str, setting: str, variables: dict[str, str]
) -> None:
    """Issues 15.2 and 20: a worker with a replica table that does not exist took two leases
    and held them for 45 s; a wrong stream.arn ran forever with /readyz ready."""
    app = Deployment(local_stack, unique_name)
    app.create()
    env = app.environment(**variables)
    if env.get("CONSUMER_DLQ__QUEUE_URL", "").startswith("QUEUE"):
        env["CONSUMER_DLQ__QUEUE_URL"] = env["CONSUMER_DLQ__QUEUE_URL"].replace(
            "QUEUE", local_stack.moto_url
        )
    if not env.get("CONSUMER_STREAM__NAME"):
        env.pop("CONSUMER_STREAM__NAME", None)
    result = _run_once(env)
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("consumer:")]
    assert len(errors) == 1 and setting in errors[0], result.stderr[-2000:]
    # No lease was taken: the lease table was not even created.
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        app.lease_items()


def test_a_lease_table_of_another_stream_is_refused(
    local_stack: LocalStackState, unique_name: str
) -> None:
    """Issue 20: the lease table had no stream identity, so an application pointed at another
    stream adopted that stream's leases and checkpoints, then failed on them forever."""
    from consumer.local.sample_orders import create_kinesis_stream

    app = Deployment(local_stack, unique_name)
    app.create()
    first = _run_once(app.environment())
    assert first.returncode == 0, first.stderr[-2000:]
    other = f"{unique_name}-other"
    create_kinesis_stream(app.endpoints.client("kinesis"), other, 1)
    second = _run_once(app.environment(CONSUMER_STREAM__NAME=other))
    assert second.returncode == 1, second.stderr[-2000:]
    errors = [line for line in second.stderr.splitlines() if line.startswith("consumer:")]
    assert len(errors) == 1 and "holds the leases of stream" in errors[0]
    assert f"stream/{unique_name}" in errors[0] or app.stream in errors[0]


def test_a_replica_with_another_key_than_the_source_is_refused(
    local_stack: LocalStackState, unique_name: str
) -> None:
    """Issue 15.2: the start-up check covers the replica's key schema against the source table
    when the source is known (Streams mode): with another key every PutItem fails."""
    from consumer.local import resources

    app = Deployment(local_stack, unique_name)
    app.create(replica=False)
    resources.create_replica(app.endpoints, app.replica, key="other")
    source = app.endpoints.client("dynamodb").describe_table(TableName=app.table)["Table"]
    result = _run_once(
        app.environment(
            CONSUMER_STREAM__MODE="streams",
            CONSUMER_STREAM__DYNAMODB_STREAM_ARN=source["LatestStreamArn"],
        )
    )
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("consumer:")]
    assert len(errors) == 1 and "pipelines.replication.table" in errors[0], result.stderr
    assert "KeySchemaMismatch" in errors[0] and app.table in errors[0]
