"""`consumer backfill` without a permission it needs: one line naming the call and the policy.

moto server enforces IAM when asked (`/moto-api/reset-auth`, the server-mode form of
INITIAL_NO_AUTH_ACTION_COUNT, https://docs.getmoto.org/en/latest/docs/iam.html): requests must
be signed by an IAM user's key, and an action the user's policies do not allow is refused.
AWS refuses such a call with AccessDeniedException ("User: ... is not authorized to perform:
dynamodb:Scan on resource: ...", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html);
moto answers the same refusal as an XML AccessDenied with HTTP 403, which botocore cannot parse
for a JSON service (the code becomes "403"): before the backfill knew HTTP 403 as a refusal,
that was a traceback. The backfill must turn either into one line. moto checks actions, not
resources (its DynamoDB requests carry the resource "*"), so the policies deny one action on "*".

The enforcing moto server is this test module's own, so the shared local stack is untouched.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from checkpoints.table import lease_table_definition
from consumer.local.stack import LocalStackState, free_port
from consumer.snapshot.backfill import Backfill, BackfillError, BackfillRequest
from tests.service_harness import Deployment
from tests.snapshot.export_double import LocalExports
from tests.snapshot.world import create_world, snapshot_parts

ITEMS = 20


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _set_auth(moto_url: str, free_actions: float) -> None:
    """Requests after this one are checked against IAM (0) or never (inf)."""
    request = urllib.request.Request(
        f"{moto_url}/moto-api/reset-auth",
        data=str(free_actions).encode(),
        headers={"Content-Type": "text/plain"},  # a form body would be parsed away
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert json.loads(answer.read())["status"] == "ok"


@pytest.fixture(scope="module")
def enforcing_stack(
    local_stack: LocalStackState, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStackState]:
    """The local stack with its own moto server (kinesis-mock shared)."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto-iam") / "moto.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    state = replace(local_stack, moto_port=port, moto_pid=server.pid)
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"{state.moto_url}/moto-api/"):
            assert server.poll() is None and time.monotonic() < deadline, Path(log).read_text()
            time.sleep(0.1)
        yield state
    finally:
        server.terminate()
        server.wait(timeout=10)


def _user_without(deployment: Deployment, denied: str) -> tuple[str, str]:
    """An IAM user allowed everything the backfill uses except `denied`; its key."""
    endpoints = deployment.endpoints
    iam = boto3.client(
        "iam",
        endpoint_url=deployment.state.moto_url,
        region_name=endpoints.region,
        aws_access_key_id=endpoints.access_key_id,
        aws_secret_access_key=endpoints.secret_access_key,
    )
    user = f"{deployment.name}-backfill"
    iam.create_user(UserName=user)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["dynamodb:*", "s3:*", "sqs:*"], "Resource": "*"},
            {"Effect": "Deny", "Action": denied, "Resource": "*"},
        ],
    }
    iam.put_user_policy(UserName=user, PolicyName="backfill", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.mark.parametrize(
    ("denied", "source", "call"),
    [
        ("dynamodb:DescribeTable", "scan", "DescribeTable"),
        ("dynamodb:Scan", "scan", "Scan"),
        ("dynamodb:ExportTableToPointInTime", "export", "ExportTableToPointInTime"),
    ],
)
def test_a_missing_permission_is_one_line_naming_the_call_and_the_policy(
    enforcing_stack: LocalStackState, unique_name: str, denied: str, source: str, call: str
) -> None:
    deployment = Deployment(enforcing_stack, unique_name, shards=1)
    create_world(deployment, ITEMS)
    dynamodb = deployment.endpoints.client("dynamodb")
    dynamodb.create_table(**lease_table_definition(f"{unique_name}-leases"))
    dynamodb.update_continuous_backups(
        TableName=deployment.table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    deployment.endpoints.client("s3").create_bucket(Bucket=f"{unique_name}-exports")
    key_id, secret = _user_without(deployment, denied)
    settings = deployment.settings(
        CONSUMER_AWS__ACCESS_KEY_ID=key_id,
        CONSUMER_AWS__SECRET_ACCESS_KEY=secret,
        CONSUMER_BACKFILL__EXPORT_BUCKET=f"{unique_name}-exports",
    )
    request = BackfillRequest(table=deployment.table, source=source, segments=2)
    _set_auth(enforcing_stack.moto_url, 0)
    try:
        with pytest.raises(BackfillError) as raised:
            asyncio.run(Backfill(settings, request).run())
    finally:
        _set_auth(enforcing_stack.moto_url, float("inf"))
    message = str(raised.value)
    assert "\n" not in message
    # moto's refusal is XML with HTTP 403, which botocore cannot parse for a JSON service.
    assert message.startswith(f"missing permission for {call} (HTTP 403)")
    assert "BackfillPolicy of infra/cloudformation/service.yaml" in message
    assert deployment.replica_items() == []  # nothing was applied
    if call != "ExportTableToPointInTime":
        assert snapshot_parts(dynamodb, f"{unique_name}-leases") == []


def test_an_export_whose_manifests_cannot_be_read_names_the_s3_permission(
    enforcing_stack: LocalStackState, unique_name: str
) -> None:
    deployment = Deployment(enforcing_stack, unique_name, shards=1)
    create_world(deployment, ITEMS)
    dynamodb = deployment.endpoints.client("dynamodb")
    dynamodb.create_table(**lease_table_definition(f"{unique_name}-leases"))
    dynamodb.update_continuous_backups(
        TableName=deployment.table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    bucket = f"{unique_name}-exports"
    deployment.endpoints.client("s3").create_bucket(Bucket=bucket)
    # The export double (DescribeExport) acts as DynamoDB, with a key allowed everything.
    admin_id, admin_secret = _user_without(replace(deployment, name=f"{unique_name}-a"), "none:x")
    admin = replace(deployment.endpoints, access_key_id=admin_id, secret_access_key=admin_secret)

    async def start_export() -> str:
        async with deployment.endpoints.aio_client("dynamodb") as client:
            arn = (await client.describe_table(TableName=deployment.table))["Table"]["TableArn"]
            api = LocalExports(client, deployment.endpoints, pending_polls=0)
            description = await api.start(arn, bucket, "exp", datetime.now(UTC))
            return str(description["ExportArn"])

    export_arn = asyncio.run(start_export())
    key_id, secret = _user_without(deployment, "s3:GetObject")
    settings = deployment.settings(
        CONSUMER_AWS__ACCESS_KEY_ID=key_id, CONSUMER_AWS__SECRET_ACCESS_KEY=secret
    )
    request = BackfillRequest(
        table=deployment.table, source="export", export_arn=export_arn, check_stitching=False
    )
    backfill = Backfill(
        settings,
        request,
        export_api=lambda client: LocalExports(client, admin, pending_polls=0),
    )
    _set_auth(enforcing_stack.moto_url, 0)
    try:
        with pytest.raises(BackfillError) as raised:
            asyncio.run(backfill.run())
    finally:
        _set_auth(enforcing_stack.moto_url, float("inf"))
    message = str(raised.value)
    assert "\n" not in message
    assert f"cannot read the manifests of export {export_arn}" in message
    assert "missing permission s3:GetObject on the export prefix" in message
    assert "TaskBackfillPolicy" in message
    assert deployment.replica_items() == []
