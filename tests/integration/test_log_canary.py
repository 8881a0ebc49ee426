"""Issue 20.5, the log canary: no attribute value, key value or secret in any log line, at any
level. DESIGN.md invariant 6 ("nothing logs item contents") and the issue's rule: log error
types and positions; details only in the dead-letter message.

A worker runs on the local stack at DEBUG with distinctive values ("canaries") everywhere they
could leak from: item keys and attributes (strings and a number), the AWS secret key, poison
records (not JSON, a wrong attribute type, an S holding a number), a transform hook that fails
(ValueError, SystemExit and a timeout, each quoting the whole item), all three sinks, and the
DLQ; then the operator's commands (`dlq list`, `dlq replay`) and settings typos. Every line
the processes write (stdout and stderr) is searched for every canary. The DLQ messages must
still carry the details (or there would be nothing to find).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumer.local.stack import LocalStackState
from consumer.service.dlq_admin import list_parked
from tests.change_factory import destination_record
from tests.service_harness import Deployment, by_key

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KEY = "kq7zcanary"  # in item keys
TEXT = "at9vcanary"  # in string attributes
NUMBER = "31415926535897932384626"  # a number attribute
AWS_SECRET = "sk2mcanarysecretkey"  # aws.secret_access_key
SECRET = "pw4xcanarypassword"  # a search password, mistyped or inside an endpoint URL
CANARIES = (KEY, TEXT, NUMBER, AWS_SECRET, SECRET)


def leaks(output: str) -> list[str]:
    return [line for line in output.splitlines() if any(c in line for c in CANARIES)]


def run_consumer(
    argv: list[str], env: dict[str, str], timeout_s: float = 150
) -> tuple[int, str]:
    """A `consumer` command as its own process; its exit code and everything it wrote."""
    done = subprocess.run(
        [sys.executable, "-m", "consumer", *argv],
        env={**os.environ, **env},
        cwd=REPO,  # the hook module (tests.canary_hooks) is imported from here
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout_s,
        check=False,
    )
    return done.returncode, done.stdout.decode(errors="replace")


def run_here(
    argv: list[str],
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str]:
    """A `consumer` command in this process (seconds faster than a new interpreter): its exit
    code and everything it wrote to stdout and stderr."""
    from consumer.cli import main

    for name in list(os.environ):
        if name.startswith("CONSUMER_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exited:  # argparse's own refusals
        code = exited.code if isinstance(exited.code, int) else 2
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def write_canary_items(app: Deployment) -> None:
    dynamodb = app.endpoints.client("dynamodb")
    for suffix in ("good-1", "good-2", "refuse", "exit", "slow", "mangle"):
        dynamodb.put_item(
            TableName=app.table,
            Item={
                "pk": {"S": f"{KEY}-{suffix}"},
                "note": {"S": f"note {TEXT}"},
                "qty": {"N": NUMBER},
            },
        )


def put_poison_records(app: Deployment) -> None:
    """Records no sink can apply, each carrying canaries where the error would quote them."""
    kinesis = app.endpoints.client("kinesis")
    wrong_type = destination_record(
        "INSERT", f"{KEY}-wrong-type", 1_700_000_000_000_001, new={"note": {"Q": TEXT}}
    )
    number_as_s = destination_record(
        "INSERT", f"{KEY}-number-as-s", 1_700_000_000_000_002, new={"qty": {"S": int(NUMBER)}}
    )
    for data in (
        f"not a change record {TEXT} {NUMBER}".encode(),
        orjson.dumps(wrong_type),
        json.dumps(number_as_s).encode(),  # orjson refuses integers past 64 bits
    ):
        kinesis.put_record(StreamName=app.stream, Data=data, PartitionKey=KEY)


def worker_environment(app: Deployment, tmp_path: Path, bucket: str) -> dict[str, str]:
    return app.environment(
        CONSUMER_AWS__SECRET_ACCESS_KEY=AWS_SECRET,
        CONSUMER_TELEMETRY__LOG_LEVEL="debug",
        CONSUMER_PIPELINES__REPLICATION__TRANSFORM="tests.canary_hooks:fail_on_canaries",
        CONSUMER_PIPELINES__REPLICATION__TRANSFORM_TIMEOUT_S="0.5",
        CONSUMER_PIPELINES__REPLICATION__RETRY__MAX_ATTEMPTS="2",
        CONSUMER_PIPELINES__SEARCH__ENABLED="true",
        CONSUMER_PIPELINES__SEARCH__LOCAL_PATH=str(tmp_path / "search"),
        CONSUMER_PIPELINES__AUDIT__ENABLED="true",
        CONSUMER_PIPELINES__AUDIT__BUCKET=bucket,
    )


def parked_text(app: Deployment, env: dict[str, str]) -> list[str]:
    settings = app.settings(**{k: v for k, v in env.items() if k.startswith("CONSUMER_")})
    messages = asyncio.run(list_parked(settings, 50))
    return [f"{m.record.pipeline} {m.record.error} {m.record.raw!r}" for m in messages]


def test_no_canary_reaches_a_log_line_of_the_worker_or_the_dlq_commands(
    local_stack: LocalStackState,
    unique_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = Deployment(local_stack, unique_name, shards=1)
    app.create()
    app.endpoints.client("s3").create_bucket(Bucket=unique_name)
    write_canary_items(app)
    app.bridge()
    put_poison_records(app)
    env = worker_environment(app, tmp_path, unique_name)

    code, output = run_consumer(["run", "--until-idle", "3"], env)

    assert code == 0, output[-3000:]  # SystemExit from the hook did not stop the worker
    assert leaks(output) == [], "\n".join(leaks(output))
    assert '"level": "debug"' in output or '"level":"debug"' in output  # DEBUG was on
    assert output.count("record.parked") >= 7
    # The mangled item is parked alone (botocore's ParamValidationError is its record's fault),
    # not a failure of its whole batch.
    assert "sink.batch_error" not in output
    replica = by_key(app.replica_items())
    assert {f"{KEY}-good-1", f"{KEY}-good-2"} <= set(replica)
    assert not {f"{KEY}-refuse", f"{KEY}-exit", f"{KEY}-slow", f"{KEY}-mangle"} & set(replica)

    # The details are in the dead-letter messages, and only there.
    parked = parked_text(app, env)
    assert any("transform failed: ValueError: refusing" in p and TEXT in p for p in parked)
    assert any("transform failed: SystemExit: giving up on" in p for p in parked)
    assert any("did not return within 0.5 s" in p for p in parked)
    assert any("ParamValidationError" in p or NUMBER in p for p in parked if "mangle" in p)
    assert any(p.startswith("decode ") and TEXT in p for p in parked)

    for argv in (["dlq", "list"], ["dlq", "list", "--json"]):
        code, listing = run_here(argv, env, monkeypatch, capsys)
        assert code == 0, listing
        # `dlq list` is the operator reading the DLQ: its rows may show the error details,
        # but its log lines (JSON with a "level") may not.
        logged = [line for line in listing.splitlines() if '"level"' in line]
        assert leaks("\n".join(logged)) == []

    # `dlq replay` reports what stays parked: positions and error types, not the details
    # (its output lands in the task's log when run as a one-off ECS task).
    code, replay = run_here(["dlq", "replay"], env, monkeypatch, capsys)
    assert code == 1  # the poison stays poison
    assert "still parked" in replay
    assert leaks(replay) == [], "\n".join(leaks(replay))
    assert "replication failed again (ValueError)" in replay
    assert "replication failed again (SystemExit)" in replay


@pytest.mark.parametrize(
    "typo",
    [
        {"CONSUMER_PIPELINES__SEARCH__PASSWROD": SECRET},  # a mistyped setting's value
        {"CONSUMER_PIPELINES__SEARCH__ENDPOINT": f"https://admin:{SECRET}@search.local:port"},
        {"CONSUMER_PIPELINES__SEARCH__ENDPOINT": f"ftp://admin:{SECRET}@search.local"},
        {"CONSUMER_PIPELINES__SEARCH__PASSWORD": SECRET, "CONSUMER_PIPELINES__SEARCH__AUTH": "x"},
        {"CONSUMER_AWS__SECRET_ACCESS_KEY": AWS_SECRET, "CONSUMER_AWS__REGION": "us-moon-1"},
        {"CONSUMER_DLQ__QUEUE_URL": f"https://user:{SECRET}@sqs.local/0/q?x=1"},
    ],
    ids=["unknown-setting", "url-port", "url-scheme", "bad-auth", "bad-region", "queue-url"],
)
@pytest.mark.parametrize("command", [["run", "--until-idle", "1"], ["config", "show"]])
def test_settings_errors_never_echo_a_secret(
    local_stack: LocalStackState,
    unique_name: str,
    typo: dict[str, str],
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = Deployment(local_stack, unique_name).environment(
        CONSUMER_TELEMETRY__LOG_LEVEL="debug", **typo
    )
    code, output = run_here(command, env, monkeypatch, capsys)
    assert code == 2, output
    assert "Traceback" not in output
    assert leaks(output) == [], "\n".join(leaks(output))


def test_config_show_hides_credentials_in_every_url(
    local_stack: LocalStackState,
    unique_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = Deployment(local_stack, unique_name).environment(
        CONSUMER_AWS__SECRET_ACCESS_KEY=AWS_SECRET,
        CONSUMER_PIPELINES__SEARCH__ENABLED="true",
        CONSUMER_PIPELINES__SEARCH__ENDPOINT=f"https://admin:{SECRET}@search.local",
        CONSUMER_PIPELINES__SEARCH__AUTH="basic",
        CONSUMER_PIPELINES__SEARCH__USERNAME="admin",
        CONSUMER_PIPELINES__SEARCH__PASSWORD=SECRET,
    )
    code, output = run_here(["config", "show"], env, monkeypatch, capsys)
    assert code == 0, output
    assert leaks(output) == [], "\n".join(leaks(output))
    shown: dict[str, Any] = orjson.loads(output[output.index("{") :])
    assert shown["pipelines"]["search"]["endpoint"] == "https://********@search.local"


def test_a_shard_stopped_on_failure_logs_no_canary(
    local_stack: LocalStackState,
    unique_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """retry.on_failure = stop: no DLQ, the shard stops at the record. The reason was the
    hook's error text (the whole item), logged by shard.stopped_on_failure and shown by
    /readyz; it is now the position and the error type."""
    app = Deployment(local_stack, unique_name, shards=1)
    app.create()
    dynamodb = app.endpoints.client("dynamodb")
    dynamodb.put_item(
        TableName=app.table,
        Item={"pk": {"S": f"{KEY}-refuse"}, "note": {"S": TEXT}, "qty": {"N": NUMBER}},
    )
    app.bridge()
    env = app.environment(
        CONSUMER_TELEMETRY__LOG_LEVEL="debug",
        CONSUMER_AWS__SECRET_ACCESS_KEY=AWS_SECRET,
        CONSUMER_PIPELINES__REPLICATION__TRANSFORM="tests.canary_hooks:fail_on_canaries",
        CONSUMER_PIPELINES__REPLICATION__RETRY__ON_FAILURE="stop",
        CONSUMER_PIPELINES__REPLICATION__RETRY__MAX_ATTEMPTS="1",
    )
    code, output = run_here(["run", "--until-idle", "3"], env, monkeypatch, capsys)
    assert "shard.stopped_on_failure" in output, output[-3000:]
    assert leaks(output) == [], "\n".join(leaks(output))
    assert "cannot apply" in output and "SinkError (on_failure=stop)" in output
    assert code in (0, 1)


def test_the_lambda_handler_logs_no_canary(
    local_stack: LocalStackState, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Streams mode on Lambda: a record the hook refuses and one that cannot be decoded are
    reported to Lambda (batchItemFailures); its log lines said why with the values."""
    from consumer.lambda_handler import handle_event
    from consumer.telemetry.logs import configure_logging
    from tests.integration.test_lambda_handler import lambda_event

    app = Deployment(local_stack, unique_name)
    app.create()
    dynamodb = app.endpoints.client("dynamodb")
    for suffix in ("good", "refuse"):
        dynamodb.put_item(
            TableName=app.table,
            Item={"pk": {"S": f"{KEY}-{suffix}"}, "note": {"S": TEXT}, "qty": {"N": NUMBER}},
        )
    event = lambda_event(app)
    broken = json.loads(json.dumps(event["Records"][0]))
    broken["dynamodb"]["NewImage"]["note"] = {"Q": TEXT}
    broken["dynamodb"]["SequenceNumber"] = "1"
    event["Records"].append(broken)
    settings = app.settings(
        CONSUMER_STREAM__MODE="streams",
        CONSUMER_STREAM__DYNAMODB_STREAM_ARN=(
            "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000"
        ),
        CONSUMER_PIPELINES__REPLICATION__TRANSFORM="tests.canary_hooks:fail_on_canaries",
        CONSUMER_AWS__SECRET_ACCESS_KEY=AWS_SECRET,
    )
    configure_logging("debug")
    response = asyncio.run(handle_event(event, settings))
    assert response["batchItemFailures"]
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "lambda.record_failed" in output
    assert leaks(output) == [], "\n".join(leaks(output))
