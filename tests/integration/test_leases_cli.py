"""`consumer leases list|reset|import-kcl` against moto."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from consumer.aws import AwsEndpoints
from consumer.cli import main
from consumer.local.stack import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, LocalStackState

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def local_environment(local_stack: LocalStackState, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUMER_ENDPOINT_DYNAMODB", local_stack.moto_url)
    monkeypatch.setenv("CONSUMER_ENDPOINT_KINESIS", local_stack.kinesis_url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_ACCESS_KEY)


def make_table(endpoints: AwsEndpoints, name: str, items: list[dict[str, Any]]) -> Any:
    dynamodb = endpoints.client("dynamodb")
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for item in items:
        dynamodb.put_item(TableName=name, Item=item)
    return dynamodb


def lease_item(key: str, checkpoint: str, counter: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "leaseKey": {"S": key},
        "leaseCounter": {"N": str(counter)},
        "checkpoint": {"S": checkpoint},
        "checkpointSubSequenceNumber": {"N": "0"},
        "ownerSwitchesSinceCheckpoint": {"N": "0"},
        **extra,
    }


def heartbeat_item(worker: str, seconds_ago: float) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(time.time() - seconds_ago, tz=UTC).isoformat()
    return {
        "leaseKey": {"S": f"__worker__#{worker}"},
        "workerId": {"S": worker},
        "heartbeatCounter": {"N": "12"},
        "heartbeatAt": {"S": stamp},
        "leaseCount": {"N": "1"},
    }


def get(dynamodb: Any, table: str, key: str) -> dict[str, Any]:
    item: dict[str, Any] = dynamodb.get_item(
        TableName=table, Key={"leaseKey": {"S": key}}, ConsistentRead=True
    )["Item"]
    return item


STANDARD_LEASES = [
    lease_item("shardId-0", "SHARD_END", childShardIds={"SS": ["shardId-2"]}),
    lease_item("shardId-1", "49600000000000000000000000000000000000000000000001",
               leaseOwner={"S": "w1"}),
    lease_item("shardId-2", "TRIM_HORIZON", parentShardId={"SS": ["shardId-0"]},
               leaseOwner={"S": "w1"}, handoffTo={"S": "w2"}),
    lease_item("shardId-3", "TRIM_HORIZON", parentShardId={"SS": ["shardId-1"]}),
]


def test_list_shows_shard_owner_checkpoint_parents_and_state(
    endpoints: AwsEndpoints, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make_table(endpoints, f"{unique_name}-leases", [*STANDARD_LEASES, heartbeat_item("w1", 1)])
    assert main(["leases", "list", "--app", unique_name]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SHARD", "OWNER", "CHECKPOINT", "PARENTS", "STATE"]
    rows = {line.split()[0]: line.split() for line in lines[1:5]}
    assert rows["shardId-0"] == ["shardId-0", "-", "SHARD_END", "-", "finished"]
    assert rows["shardId-1"][1:3] == ["w1", "49600000000000000000000000000000000000000000000001"]
    assert rows["shardId-1"][4] == "owned"
    assert rows["shardId-2"][3:] == ["shardId-0", "handoff-to:w2"]
    assert rows["shardId-3"][4] == "waiting-for-parents"
    assert any(line.startswith("worker w1: 1 leases, heartbeat") for line in lines)


def test_list_of_a_missing_table_is_one_clear_line(
    unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["leases", "list", "--table", unique_name]) == 1
    error = capsys.readouterr().err
    assert error.strip() == f"consumer leases: lease table {unique_name} does not exist"


def test_reset_refuses_while_a_worker_is_alive_unless_forced(
    endpoints: AwsEndpoints, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    table = f"{unique_name}-leases"
    dynamodb = make_table(endpoints, table, [*STANDARD_LEASES, heartbeat_item("w1", 0.5)])
    arguments = ["leases", "reset", "--app", unique_name, "--to", "TRIM_HORIZON",
                 "--observe-s", "0.2"]
    assert main(arguments) == 1
    assert "refusing to reset" in capsys.readouterr().err
    assert get(dynamodb, table, "shardId-1")["leaseOwner"] == {"S": "w1"}

    assert main([*arguments, "--force"]) == 0
    assert "reset 4 of 4 leases to TRIM_HORIZON" in capsys.readouterr().out
    for key in ("shardId-0", "shardId-1", "shardId-2", "shardId-3"):
        item = get(dynamodb, table, key)
        assert item["checkpoint"] == {"S": "TRIM_HORIZON"}
        assert "leaseOwner" not in item
        assert "handoffTo" not in item
        assert item["leaseCounter"] == {"N": "4"}


def test_reset_to_latest_keeps_finished_shards_and_at_timestamp_stores_the_time(
    endpoints: AwsEndpoints, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    table = f"{unique_name}-leases"
    dynamodb = make_table(endpoints, table, [*STANDARD_LEASES, heartbeat_item("old", 3600)])
    base = ["leases", "reset", "--table", table, "--observe-s", "0"]
    assert main([*base, "--to", "LATEST"]) == 0
    assert get(dynamodb, table, "shardId-0")["checkpoint"] == {"S": "SHARD_END"}
    assert get(dynamodb, table, "shardId-1")["checkpoint"] == {"S": "LATEST"}
    assert main([*base, "--to", "AT_TIMESTAMP=2026-01-31T12:00:00Z"]) == 0
    item = get(dynamodb, table, "shardId-0")
    assert item["checkpoint"] == {"S": "AT_TIMESTAMP"}
    expected_ms = int(datetime(2026, 1, 31, 12, tzinfo=UTC).timestamp() * 1000)
    assert item["checkpointTimestamp"] == {"N": str(expected_ms)}
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*base, "--to", "SHARD_END"])


def test_import_kcl_adopts_a_stopped_applications_checkpoints(
    endpoints: AwsEndpoints, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    kcl_table = f"{unique_name}-kcl"
    kcl_items = [
        lease_item("shardId-000000000000", "SHARD_END", counter=812,
                   childShardIds={"SS": ["shardId-000000000002"]}),
        lease_item("shardId-000000000001", "49650000000000000000000000000000000000000000000007",
                   counter=900, leaseOwner={"S": "kcl-worker-1"},
                   checkpointSubSequenceNumber={"N": "3"},
                   pendingCheckpoint={"S": "49650000000000000000000000000000000000000000000009"},
                   pendingCheckpointSubSequenceNumber={"N": "0"}),
        lease_item("shardId-000000000002", "TRIM_HORIZON", counter=5,
                   leaseOwner={"S": "kcl-worker-2"},
                   parentShardId={"SS": ["shardId-000000000000"]}),
    ]
    make_table(endpoints, kcl_table, kcl_items)
    arguments = ["leases", "import-kcl", "--table", kcl_table, "--app", unique_name,
                 "--observe-s", "0.2"]
    assert main(arguments) == 0
    assert f"imported 3 leases from {kcl_table}" in capsys.readouterr().out
    dynamodb = endpoints.client("dynamodb")
    ours = f"{unique_name}-leases"
    one = get(dynamodb, ours, "shardId-000000000001")
    assert one["checkpoint"] == {"S": "49650000000000000000000000000000000000000000000007"}
    assert one["checkpointSubSequenceNumber"] == {"N": "3"}
    assert one["pendingCheckpoint"] == {"S": "49650000000000000000000000000000000000000000000009"}
    assert "leaseOwner" not in one  # unowned: our workers take it
    assert one["leaseCounter"] == {"N": "0"}
    child = get(dynamodb, ours, "shardId-000000000002")
    assert child["parentShardId"] == {"SS": ["shardId-000000000000"]}
    assert get(dynamodb, ours, "shardId-000000000000")["childShardIds"] == {
        "SS": ["shardId-000000000002"]
    }
    assert main(arguments) == 0  # again: nothing is overwritten
    assert "imported 0 leases" in capsys.readouterr().out


def test_import_kcl_refuses_while_kcl_still_renews_leases(
    endpoints: AwsEndpoints, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    kcl_table = f"{unique_name}-kcl"
    dynamodb = make_table(endpoints, kcl_table, [lease_item("shardId-0", "TRIM_HORIZON")])
    stop = threading.Event()

    def renew() -> None:  # what a running KCL worker does every ~3.3 s
        while not stop.is_set():
            dynamodb.update_item(
                TableName=kcl_table,
                Key={"leaseKey": {"S": "shardId-0"}},
                UpdateExpression="ADD leaseCounter :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
            time.sleep(0.05)

    renewer = threading.Thread(target=renew)
    renewer.start()
    try:
        code = main(["leases", "import-kcl", "--table", kcl_table, "--app", unique_name,
                     "--observe-s", "0.5"])
    finally:
        stop.set()
        renewer.join()
    assert code == 1
    assert "still being renewed" in capsys.readouterr().err
