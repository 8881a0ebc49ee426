"""Issue 20.1 and 20.3 against the local stack: `consumer leases` and `consumer dlq` given a
table that is not a lease table, a queue that does not exist, an unreachable endpoint, an
unknown pipeline, or a live application's table: one line and a non-zero exit, never a
traceback; `dlq list` never imports the replication transform hook."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from consumer.aws import AwsEndpoints
from consumer.cli import main
from consumer.local.stack import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, LocalStackState
from tests.integration.test_leases_cli import heartbeat_item, lease_item, make_table

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def local_environment(local_stack: LocalStackState, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CONSUMER_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CONSUMER_ENDPOINT_DYNAMODB", local_stack.moto_url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_ACCESS_KEY)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def orders_table(endpoints: AwsEndpoints, unique_name: str) -> str:
    """A table that is not a lease table: its key is `id` and its items are orders."""
    dynamodb = endpoints.client("dynamodb")
    dynamodb.create_table(
        TableName=unique_name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName=unique_name, Item={"id": {"S": "o1"}, "total": {"N": "3"}})
    return unique_name


@pytest.mark.parametrize(
    "argv",
    [
        ["leases", "list", "--table"],
        ["leases", "reset", "--to", "LATEST", "--observe-s", "0", "--table"],
        ["leases", "import-kcl", "--app", "ours", "--observe-s", "0", "--table"],
    ],
    ids=["list", "reset", "import-kcl"],
)
def test_a_table_that_is_not_a_lease_table_is_one_line(
    orders_table: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, orders_table]) == 1
    assert f"table {orders_table} is not a lease table" in one_error_line(capsys)


def test_import_refuses_a_table_whose_workers_are_live(
    endpoints: AwsEndpoints, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Our own lease table while the service runs: its lease counters do not move (only
    heartbeats do), so the KCL check alone let the import through."""
    make_table(
        endpoints,
        unique_name,
        [lease_item("shardId-0", "TRIM_HORIZON", leaseOwner={"S": "w1"}), heartbeat_item("w1", 1)],
    )
    argv = ["leases", "import-kcl", "--table", unique_name, "--app", "ours", "--observe-s", "0"]
    assert main(argv) == 1
    line = one_error_line(capsys)
    assert "workers w1 of this service are live" in line and "--force" in line


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "is not an http:// or https:// URL"),
        ("http://[::1", "is not a URL"),
        ("http://localhost:port", "is not a URL"),
    ],
)
def test_a_malformed_endpoint_url_is_one_line(
    url: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["leases", "list", "--table", "t-x", "--endpoint-url-dynamodb", url]) == 2
    line = one_error_line(capsys)
    assert "--endpoint-url-dynamodb" in line and expected in line


def test_an_unknown_region_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leases", "list", "--table", "t-x", "--region", "us-moon-1"]) == 2
    assert "--region 'us-moon-1' is not an AWS region" in one_error_line(capsys)


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_observe_seconds_must_be_a_finite_non_negative_number(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["leases", "reset", "--table", "t-x", "--to", "LATEST", "--observe-s", value])
    assert exited.value.code == 2
    assert "--observe-s" in capsys.readouterr().err.splitlines()[-1]


# --- dlq -----------------------------------------------------------------------------------


def dlq_environment(
    monkeypatch: pytest.MonkeyPatch, local_stack: LocalStackState, queue_url: str, **more: str
) -> None:
    values = {
        "CONSUMER_STREAM__NAME": "orders",
        "CONSUMER_AWS__ENDPOINT_SQS": local_stack.moto_url,
        "CONSUMER_AWS__ENDPOINT_S3": local_stack.moto_url,
        "CONSUMER_AWS__ENDPOINT_DYNAMODB": local_stack.moto_url,
        "CONSUMER_AWS__ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
        "CONSUMER_AWS__SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
        "CONSUMER_DLQ__QUEUE_URL": queue_url,
        **more,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("action", ["list", "replay"])
def test_a_missing_queue_is_one_line(
    action: str,
    local_stack: LocalStackState,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = f"{local_stack.moto_url}/000000000000/no-such-queue"
    dlq_environment(monkeypatch, local_stack, missing)
    assert main(["dlq", action]) == 1
    assert f"queue {missing} does not exist" in one_error_line(capsys)


@pytest.mark.parametrize("action", ["list", "replay"])
def test_a_garbage_queue_url_is_one_line(
    action: str,
    local_stack: LocalStackState,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dlq_environment(monkeypatch, local_stack, "garbage")
    assert main(["dlq", action]) == 2
    assert "dlq.queue_url" in one_error_line(capsys)


@pytest.mark.parametrize("action", ["list", "replay"])
def test_an_unreachable_endpoint_is_one_line(
    action: str,
    local_stack: LocalStackState,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dlq_environment(
        monkeypatch,
        local_stack,
        "http://127.0.0.1:9/000000000000/q",
        CONSUMER_AWS__ENDPOINT_SQS="http://127.0.0.1:9",  # discard port: nothing listens
    )
    assert main(["dlq", action]) == 1
    assert "cannot reach the queue's endpoint" in one_error_line(capsys)


def test_replay_of_an_unknown_pipeline_is_refused(
    local_stack: LocalStackState,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dlq_environment(monkeypatch, local_stack, f"{local_stack.moto_url}/000000000000/q")
    with pytest.raises(SystemExit) as exited:
        main(["dlq", "replay", "--pipeline", "replica"])
    assert exited.value.code == 2
    assert "--pipeline" in capsys.readouterr().err.splitlines()[-1]
    assert main(["dlq", "replay", "--pipeline", "audit"]) == 2
    assert "--pipeline audit: that pipeline is not enabled" in one_error_line(capsys)


def test_list_does_not_import_the_transform_hook(
    endpoints: AwsEndpoints,
    local_stack: LocalStackState,
    unique_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 20.5: listing built every pipeline, so it imported (ran) the user's hook."""
    hook = f"hook_{unique_name.replace('-', '_')}"
    (tmp_path / f"{hook}.py").write_text(
        "raise SystemExit('the transform hook was imported')\ndef redact(item): return item\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    queue_url: str = endpoints.client("sqs").create_queue(QueueName=unique_name)["QueueUrl"]
    replica: Any = endpoints.client("dynamodb")
    replica.create_table(
        TableName=unique_name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dlq_environment(
        monkeypatch,
        local_stack,
        queue_url,
        CONSUMER_PIPELINES__REPLICATION__ENABLED="true",
        CONSUMER_PIPELINES__REPLICATION__TABLE=unique_name,
        CONSUMER_PIPELINES__REPLICATION__TRANSFORM=f"{hook}:redact",
    )
    assert main(["dlq", "list"]) == 0
    assert hook not in sys.modules
    assert "0 parked record(s) shown" in capsys.readouterr().err
