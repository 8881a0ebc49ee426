"""`consumer backfill` on bad input: one clear line each, and what can go on goes on."""

from __future__ import annotations

import asyncio
import gzip
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from checkpoints.model import Checkpoint, Lease, lease_to_item
from checkpoints.table import lease_table_definition
from consumer.cli import main
from consumer.local import resources
from consumer.local.stack import LocalStackState
from consumer.snapshot.backfill import Backfill, BackfillError, BackfillRequest
from consumer.snapshot.export_reader import DynamoDbExports
from tests.service_harness import Deployment
from tests.snapshot.export_double import LocalExports
from tests.snapshot.world import create_world, prefill, snapshot_parts

ITEMS = 60


def _world(local_stack: LocalStackState, name: str, pitr: bool = True) -> Deployment:
    deployment = Deployment(local_stack, name, shards=1)
    create_world(deployment, ITEMS)
    dynamodb = deployment.endpoints.client("dynamodb")
    dynamodb.create_table(**lease_table_definition(f"{name}-leases"))
    deployment.endpoints.client("s3").create_bucket(Bucket=f"{name}-exports")
    if pitr:
        dynamodb.update_continuous_backups(
            TableName=deployment.table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    return deployment


def _settings(deployment: Deployment, **extra: str) -> Any:
    return deployment.settings(
        CONSUMER_BACKFILL__EXPORT_BUCKET=f"{deployment.name}-exports",
        CONSUMER_BACKFILL__LEASE_S="3",
        **extra,
    )


def _exports(deployment: Deployment, **options: Any) -> Any:
    endpoints = deployment.endpoints
    return lambda dynamodb: LocalExports(dynamodb, endpoints, pending_polls=0, **options)


def _export_of(deployment: Deployment, table: str, export_time: datetime, **options: Any) -> str:
    async def start() -> str:
        endpoints = deployment.endpoints
        async with endpoints.aio_client("dynamodb") as dynamodb:
            arn = (await dynamodb.describe_table(TableName=table))["Table"]["TableArn"]
            options.setdefault("pending_polls", 0)
            api = LocalExports(dynamodb, endpoints, **options)
            description = await api.start(arn, f"{deployment.name}-exports", "exp", export_time)
            return str(description["ExportArn"])

    return asyncio.run(start())


def _run(deployment: Deployment, request: BackfillRequest, **extra: str) -> Any:
    backfill = Backfill(
        _settings(deployment, **extra), request, export_api=_exports(deployment), export_poll_s=0.1
    )
    return asyncio.run(backfill.run())


def test_an_export_of_a_table_without_point_in_time_recovery_is_one_line_saying_how(
    local_stack: LocalStackState, unique_name: str
) -> None:
    # moto's ExportTableToPointInTime refuses a table without PITR, as AWS does
    # (PointInTimeRecoveryUnavailableException, API reference): the real client path.
    deployment = _world(local_stack, unique_name, pitr=False)
    backfill = Backfill(
        _settings(deployment),
        BackfillRequest(table=deployment.table, source="export", check_stitching=False),
        export_api=DynamoDbExports,
    )
    with pytest.raises(BackfillError) as raised:
        asyncio.run(backfill.run())
    message = str(raised.value)
    assert "\n" not in message
    assert "point-in-time recovery" in message
    assert "update-continuous-backups" in message and "--source scan" in message


def test_an_export_of_another_table_is_refused_naming_both(
    local_stack: LocalStackState, unique_name: str
) -> None:
    deployment = _world(local_stack, unique_name)
    other = f"{unique_name}-other"
    dynamodb = deployment.endpoints.client("dynamodb")
    dynamodb.create_table(
        TableName=other,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_continuous_backups(
        TableName=other,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    arn = _export_of(deployment, other, datetime.now(UTC))
    request = BackfillRequest(table=deployment.table, source="export", export_arn=arn)
    with pytest.raises(BackfillError) as raised:
        _run(deployment, request)
    message = str(raised.value)
    assert f"table/{other}" in message and f"table/{deployment.table}" in message
    assert "another table, region or account" in message


def test_missing_and_corrupt_data_files_are_named_the_rest_is_applied_bad_lines_parked(
    local_stack: LocalStackState, unique_name: str
) -> None:
    deployment = _world(local_stack, unique_name)
    arn = _export_of(deployment, deployment.table, datetime.now(UTC), files=4)
    s3 = deployment.endpoints.client("s3")
    bucket = f"{unique_name}-exports"
    keys = sorted(
        entry["Key"]
        for entry in s3.list_objects_v2(Bucket=bucket)["Contents"]
        if entry["Key"].endswith(".json.gz")
    )
    assert len(keys) == 4
    manifest_order = [
        orjson.loads(line)["dataFileS3Key"]
        for page in s3.list_objects_v2(Bucket=bucket)["Contents"]
        if page["Key"].endswith("manifest-files.json")
        for line in s3.get_object(Bucket=bucket, Key=page["Key"])["Body"].read().splitlines()
    ]
    missing, corrupt, with_bad_line, good = manifest_order
    s3.delete_object(Bucket=bucket, Key=missing)
    whole = gzip.decompress(s3.get_object(Bucket=bucket, Key=corrupt)["Body"].read())
    cut = gzip.compress(whole)
    s3.put_object(Bucket=bucket, Key=corrupt, Body=cut[: len(cut) // 2] + b"\x00garbage")
    lines = gzip.decompress(s3.get_object(Bucket=bucket, Key=with_bad_line)["Body"].read())
    s3.put_object(Bucket=bucket, Key=with_bad_line, Body=gzip.compress(b'{"Item": 12}\n' + lines))
    request = BackfillRequest(table=deployment.table, source="export", export_arn=arn)
    outcome = _run(deployment, request)
    assert outcome.finished
    failed = sorted(outcome.failed_parts)
    assert len(failed) == 2
    assert any(missing in line and "cannot be read" in line for line in failed), failed
    assert any(corrupt in line and "corrupt" in line for line in failed), failed
    assert outcome.parked == 1  # the bad line, in the DLQ
    sqs = deployment.endpoints.client("sqs")
    depth = sqs.get_queue_attributes(
        QueueUrl=deployment.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert depth == "1"
    replica = {item["pk"]["S"] for item in deployment.replica_items()}
    good_keys = {
        orjson.loads(line)["Item"]["pk"]["S"]
        for key in (good, with_bad_line)
        for line in gzip.decompress(
            s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        ).splitlines()
        if line.startswith(b'{"Item": {') or line.startswith(b'{"Item":{')
    }
    assert good_keys and good_keys <= replica


def test_the_cli_names_each_failed_file_and_exits_1(
    local_stack: LocalStackState,
    unique_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment = _world(local_stack, unique_name)
    arn = _export_of(deployment, deployment.table, datetime.now(UTC), files=2)
    s3 = deployment.endpoints.client("s3")
    bucket = f"{unique_name}-exports"
    victim = next(
        entry["Key"]
        for entry in s3.list_objects_v2(Bucket=bucket)["Contents"]
        if entry["Key"].endswith(".json.gz")
    )
    s3.delete_object(Bucket=bucket, Key=victim)
    for key, value in deployment.environment(
        CONSUMER_BACKFILL__LEASE_S="3", CONSUMER_TELEMETRY__LOG_LEVEL="error"
    ).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(
        "consumer.cli.backfill_cmd.Backfill",
        lambda settings, request, view=None: Backfill(
            settings, request, view=view, export_api=_exports(deployment)
        ),
    )
    code = main(
        ["backfill", "--table", deployment.table, "--export-arn", arn, "--progress", "none"]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert f"s3://{bucket}/{victim}" in err
    assert "backfill: FAILED" in out and "failed_parts=1" in out


def test_an_export_older_than_the_consumers_position_is_refused(
    local_stack: LocalStackState, unique_name: str
) -> None:
    # The consumer has read the stream past the export's time: changes in between reached only
    # the pipelines it had then, so a pipeline added since would miss them.
    deployment = _world(local_stack, unique_name)
    arn = _export_of(deployment, deployment.table, datetime.now(UTC) - timedelta(seconds=30))
    kinesis = deployment.endpoints.client("kinesis")
    shard = kinesis.list_shards(StreamName=deployment.stream)["Shards"][0]["ShardId"]
    put = kinesis.put_record(StreamName=deployment.stream, Data=b"{}", PartitionKey="k")
    dynamodb = deployment.endpoints.client("dynamodb")
    lease = Lease(key=shard, shard_id=shard, checkpoint=Checkpoint.after(put["SequenceNumber"]))
    dynamodb.put_item(TableName=f"{unique_name}-leases", Item=lease_to_item(lease))
    request = BackfillRequest(table=deployment.table, source="export", export_arn=arn)
    with pytest.raises(BackfillError) as raised:
        _run(deployment, request)
    assert f"has read shard {shard} past the snapshot time" in str(raised.value)
    # Nothing was started.
    assert snapshot_parts(dynamodb, f"{unique_name}-leases") == []


def test_a_consumer_that_never_ran_and_would_start_at_latest_is_refused(
    local_stack: LocalStackState, unique_name: str
) -> None:
    deployment = _world(local_stack, unique_name)
    request = BackfillRequest(table=deployment.table, source="scan")
    with pytest.raises(BackfillError) as raised:
        _run(deployment, request, CONSUMER_STREAM__INITIAL_POSITION="LATEST")
    assert "LATEST" in str(raised.value) and "consumer run" in str(raised.value)


def test_a_missing_table_is_one_line(local_stack: LocalStackState, unique_name: str) -> None:
    deployment = _world(local_stack, unique_name)
    request = BackfillRequest(table=f"{unique_name}-nope", source="scan")
    with pytest.raises(BackfillError, match="does not exist"):
        _run(deployment, request)


def test_audit_takes_snapshot_items_under_their_own_snapshot_partition(
    local_stack: LocalStackState, unique_name: str, tmp_path: Path
) -> None:
    deployment = _world(local_stack, unique_name)
    bucket = f"{unique_name}-audit"
    deployment.endpoints.client("s3").create_bucket(Bucket=bucket)
    request = BackfillRequest(
        table=deployment.table, source="scan", segments=2, pipelines=("audit", "replication")
    )
    outcome = _run(
        deployment,
        request,
        CONSUMER_PIPELINES__AUDIT__ENABLED="true",
        CONSUMER_PIPELINES__AUDIT__BUCKET=bucket,
    )
    assert outcome.finished and outcome.items == ITEMS
    s3 = deployment.endpoints.client("s3")
    keys = [entry["Key"] for entry in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    prefix = f"audit/snapshot={outcome.snapshot_id}/table={deployment.table}/dt="
    assert keys and all(key.startswith(prefix) for key in keys), keys[:3]
    assert len(resources.audit_event_ids(deployment.endpoints, bucket)) == ITEMS
    assert len(deployment.replica_items()) == ITEMS


def test_two_processes_share_one_scan_and_each_item_is_read_once(
    local_stack: LocalStackState, unique_name: str
) -> None:
    deployment = _world(local_stack, unique_name)
    prefill(deployment.endpoints.client("dynamodb"), deployment.table, 200, seed=9)

    async def both() -> list[Any]:
        runs = [
            Backfill(
                _settings(deployment),
                BackfillRequest(
                    table=deployment.table,
                    source="scan",
                    segments=6,
                    worker_id=worker,
                    page_items=20,
                ),
            ).run()
            for worker in ("a", "b")
        ]
        return list(await asyncio.gather(*runs))

    started = time.monotonic()
    first, second = asyncio.run(both())
    assert first.snapshot_id == second.snapshot_id  # the second joined the first's snapshot
    assert first.items == second.items == 200
    assert first.read_here + second.read_here >= 200
    assert first.read_here > 0 and second.read_here > 0
    assert time.monotonic() - started < 60


def test_a_backfill_with_other_options_than_the_running_one_is_refused(
    local_stack: LocalStackState, unique_name: str
) -> None:
    deployment = _world(local_stack, unique_name)

    async def begin_only() -> None:
        from consumer.snapshot.segments import SnapshotLeases
        from consumer.snapshot.table_reader import begin_scan_snapshot

        async with deployment.endpoints.aio_client("dynamodb") as client:
            leases = SnapshotLeases(client, f"{unique_name}-leases")
            await begin_scan_snapshot(
                leases,
                snapshot_id="running",
                purpose="backfill",
                table=deployment.table,
                segments=2,
                pipelines=("replication",),
                now_us=1,
            )

    asyncio.run(begin_only())  # a backfill that was stopped half way
    request = BackfillRequest(table=deployment.table, source="export")
    with pytest.raises(BackfillError, match=r"still running .*--source scan.*--abandon"):
        _run(deployment, request)


def test_an_export_still_running_is_refused_in_one_line_and_nothing_starts(
    local_stack: LocalStackState, unique_name: str
) -> None:
    # Issue 17, "Bad input": an export given with --export-arn that is still running is
    # refused (DescribeExport's ExportStatus IN_PROGRESS, API reference). Only an export the
    # backfill started itself is waited for.
    deployment = _world(local_stack, unique_name)
    arn = _export_of(deployment, deployment.table, datetime.now(UTC), pending_polls=1000)
    request = BackfillRequest(table=deployment.table, source="export", export_arn=arn)
    started = time.monotonic()
    with pytest.raises(BackfillError) as raised:
        _run(deployment, request)
    message = str(raised.value)
    assert "\n" not in message
    assert f"export {arn} is IN_PROGRESS, not COMPLETED" in message
    assert "leave out --export-arn" in message
    assert time.monotonic() - started < 20  # refused, not waited for
    dynamodb = deployment.endpoints.client("dynamodb")
    assert snapshot_parts(dynamodb, f"{unique_name}-leases") == []
    assert deployment.replica_items() == []


def test_an_export_older_than_the_streams_retention_is_refused(
    local_stack: LocalStackState, unique_name: str
) -> None:
    # The stream keeps 24 h (kinesis-mock's default retention, as Kinesis's): an export taken
    # 25 h ago is older than anything the stream can still deliver, so changes between the
    # export and the stream's trim horizon would be lost.
    deployment = _world(local_stack, unique_name)
    arn = _export_of(deployment, deployment.table, datetime.now(UTC) - timedelta(hours=25))
    request = BackfillRequest(table=deployment.table, source="export", export_arn=arn)
    with pytest.raises(BackfillError) as raised:
        _run(deployment, request)
    message = str(raised.value)
    assert "\n" not in message
    assert "the stream keeps 24 h of changes" in message and "no longer covers" in message
    assert snapshot_parts(deployment.endpoints.client("dynamodb"), f"{unique_name}-leases") == []
