"""Deploys infra/cloudformation/service.yaml into moto's CloudFormation and checks what the
service will find: the stream, the lease and replica tables, the bucket, the queue, the roles
and a task definition whose environment loads into Settings naming exactly those resources.

What moto's CloudFormation does not model, and so is checked statically in
tests/unit/test_infra_template.py instead:
- resource types it skips with a warning: AWS::Kinesis::StreamConsumer,
  AWS::ApplicationAutoScaling::*, AWS::CloudWatch::Alarm, AWS::S3::BucketPolicy,
  AWS::SQS::QueuePolicy, AWS::OpenSearchService::Domain. A Ref to a skipped resource is empty,
  but a Fn::GetAtt of one fails the stack, so the OpenSearch switch stays off here.
- properties it ignores: the table's KinesisStreamSpecification, TimeToLiveSpecification and
  PointInTimeRecoverySpecification, the stream's mode (it makes 1 shard) and encryption, the
  bucket's public access block, lifecycle and versioning, and the task definition's Fargate
  settings (it records networkMode "bridge" and no task role).
- an `AWS::NoValue` item in a list is left as null rather than removed (real CloudFormation
  drops it): the environment is read without those. And an inline role policy comes back as
  the Python repr of the document rather than JSON.
"""

from __future__ import annotations

import ast
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from checkpoints.table import lease_table_definition
from consumer.aws import AwsEndpoints
from consumer.settings import Settings, load_settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "cloudformation" / "service.yaml"


class Moto:
    """boto3 clients on the local stack's moto server, for any service."""

    def __init__(self, endpoints: AwsEndpoints) -> None:
        self._kwargs = endpoints.client_kwargs("cloudformation")
        assert self._kwargs.get("endpoint_url"), "the local stack must route CloudFormation"

    def client(self, service: str) -> Any:
        # Everything the stack creates lives in moto, Kinesis included (not kinesis-mock).
        return boto3.session.Session().client(service, **self._kwargs)


@pytest.fixture(scope="module")
def deployed(endpoints: AwsEndpoints) -> Iterator[tuple[Moto, dict[str, Any], dict[str, str]]]:
    moto = Moto(endpoints)
    name = f"infra-{uuid.uuid4().hex[:10]}"
    ec2 = moto.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{index}.0/24")["Subnet"]["SubnetId"]
        for index in range(2)
    ]
    parameters = {
        "ApplicationName": name,
        "ContainerImage": "registry.example/ddb-cdc-consumer:0.1.0",
        "SourceTableName": f"{name}-orders",
        "PartitionKeyName": "pk",
        "SortKeyName": "sk",
        "SortKeyType": "N",
        "RetentionHours": "168",
        "VpcId": vpc,
        "SubnetIds": ",".join(subnets),
        "DesiredCount": "2",
        "EnableReplication": "true",
        "EnableOpenSearch": "false",  # moto cannot create the domain (see the module doc)
    }
    cloudformation = moto.client("cloudformation")
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    try:
        (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
        yield moto, stack, parameters
    finally:
        cloudformation.delete_stack(StackName=name)


def outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def container(moto: Moto, stack: dict[str, Any]) -> dict[str, Any]:
    arn = outputs(stack)["TaskDefinitionArn"]
    definition = moto.client("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]
    (only,) = definition["containerDefinitions"]
    return dict(only)


def settings_from_container(
    moto: Moto, stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Settings:
    for name in list(os.environ):
        if name.startswith("CONSUMER_"):
            monkeypatch.delenv(name)
    for pair in container(moto, stack)["environment"]:
        if pair is not None:  # moto keeps AWS::NoValue list items as null
            monkeypatch.setenv(pair["name"], pair["value"])
    return load_settings()


def test_stack_is_created(deployed: tuple[Moto, dict[str, Any], dict[str, str]]) -> None:
    _, stack, _ = deployed
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert {
        "StreamName",
        "StreamArn",
        "LeaseTableName",
        "ReplicaTableName",
        "AuditBucketName",
        "DeadLetterQueueUrl",
        "ClusterName",
        "ServiceName",
        "TaskDefinitionArn",
        "LogGroupName",
    } <= set(outputs(stack))


def test_task_environment_names_the_deployed_resources(
    deployed: tuple[Moto, dict[str, Any], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto, stack, parameters = deployed
    found = outputs(stack)
    settings = settings_from_container(moto, stack, monkeypatch)

    summary = moto.client("kinesis").describe_stream_summary(StreamName=settings.stream.name)
    assert summary["StreamDescriptionSummary"]["StreamARN"] == settings.stream.arn
    assert summary["StreamDescriptionSummary"]["RetentionPeriodHours"] == 168
    assert settings.consumer_name == parameters["ApplicationName"]

    dynamodb = moto.client("dynamodb")
    dynamodb.describe_table(TableName=settings.lease_table)
    assert settings.pipelines.replication.enabled
    assert settings.pipelines.replication.table == found["ReplicaTableName"]
    dynamodb.describe_table(TableName=settings.pipelines.replication.table)

    assert settings.pipelines.audit.enabled
    assert settings.pipelines.audit.bucket == found["AuditBucketName"]
    assert settings.dlq.overflow_bucket == found["AuditBucketName"]
    moto.client("s3").head_bucket(Bucket=found["AuditBucketName"])

    queue_name = settings.dlq.queue_url.rsplit("/", 1)[-1] if settings.dlq.queue_url else ""
    queue_url = moto.client("sqs").get_queue_url(QueueName=queue_name)["QueueUrl"]
    assert queue_url.rsplit("/", 1)[-1] == found["DeadLetterQueueUrl"].rsplit("/", 1)[-1]

    assert not settings.pipelines.search.enabled
    assert settings.telemetry.emf_namespace == "DdbCdcConsumer"


def test_lease_table_matches_lease_table_definition(
    deployed: tuple[Moto, dict[str, Any], dict[str, str]],
) -> None:
    moto, stack, _ = deployed
    name = outputs(stack)["LeaseTableName"]
    table = moto.client("dynamodb").describe_table(TableName=name)["Table"]
    expected = lease_table_definition(name)
    assert table["KeySchema"] == expected["KeySchema"]
    assert table["AttributeDefinitions"] == expected["AttributeDefinitions"]
    assert table["BillingModeSummary"]["BillingMode"] == expected["BillingMode"]


def test_replica_table_has_the_source_table_key(
    deployed: tuple[Moto, dict[str, Any], dict[str, str]],
) -> None:
    moto, stack, parameters = deployed
    dynamodb = moto.client("dynamodb")
    source = dynamodb.describe_table(TableName=parameters["SourceTableName"])["Table"]
    replica = dynamodb.describe_table(TableName=outputs(stack)["ReplicaTableName"])["Table"]
    assert (
        replica["KeySchema"]
        == source["KeySchema"]
        == [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ]
    )
    assert sorted(replica["AttributeDefinitions"], key=str) == sorted(
        source["AttributeDefinitions"], key=str
    )
    assert {"AttributeName": "sk", "AttributeType": "N"} in replica["AttributeDefinitions"]
    assert replica["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_dead_letter_queue_keeps_records_for_14_days(
    deployed: tuple[Moto, dict[str, Any], dict[str, str]],
) -> None:
    moto, stack, _ = deployed
    attributes = moto.client("sqs").get_queue_attributes(
        QueueUrl=moto.client("sqs").get_queue_url(
            QueueName=outputs(stack)["DeadLetterQueueUrl"].rsplit("/", 1)[-1]
        )["QueueUrl"],
        AttributeNames=["All"],
    )["Attributes"]
    assert attributes["MessageRetentionPeriod"] == "1209600"
    assert attributes["SqsManagedSseEnabled"] == "true"


def test_audit_bucket_is_encrypted_with_kms(
    deployed: tuple[Moto, dict[str, Any], dict[str, str]],
) -> None:
    moto, stack, _ = deployed
    encryption = moto.client("s3").get_bucket_encryption(Bucket=outputs(stack)["AuditBucketName"])
    (rule,) = encryption["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"


def test_container_health_check_and_logs(
    deployed: tuple[Moto, dict[str, Any], dict[str, str]],
) -> None:
    moto, stack, parameters = deployed
    definition = container(moto, stack)
    assert definition["image"] == parameters["ContainerImage"]
    assert definition["healthCheck"]["command"] == ["CMD", "consumer", "health"]
    assert definition["stopTimeout"] == 30
    assert definition["readonlyRootFilesystem"] is True
    options = definition["logConfiguration"]["options"]
    assert options["awslogs-group"] == outputs(stack)["LogGroupName"]
    groups = moto.client("logs").describe_log_groups(
        logGroupNamePrefix=outputs(stack)["LogGroupName"]
    )["logGroups"]
    assert [group["logGroupName"] for group in groups] == [outputs(stack)["LogGroupName"]]
    assert groups[0]["retentionInDays"] == 30


def test_service_runs_the_task_definition(
    deployed: tuple[Moto, dict[str, Any], dict[str, str]],
) -> None:
    moto, stack, _ = deployed
    found = outputs(stack)
    (service,) = moto.client("ecs").describe_services(
        cluster=found["ClusterName"], services=[found["ServiceName"]]
    )["services"]
    assert service["desiredCount"] == 2
    assert service["taskDefinition"] == found["TaskDefinitionArn"]


def test_task_role_is_scoped_to_the_stack_resources(
    deployed: tuple[Moto, dict[str, Any], dict[str, str]],
) -> None:
    moto, stack, parameters = deployed
    iam = moto.client("iam")
    role = f"{parameters['ApplicationName']}-task"
    statements: dict[str, dict[str, Any]] = {}
    for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
        if isinstance(document, str):
            # moto stores a CloudFormation inline policy as the Python repr of the document.
            document = ast.literal_eval(document)
        statements.update({s["Sid"]: s for s in document["Statement"]})
    found = outputs(stack)
    table_arn = moto.client("dynamodb").describe_table(TableName=found["LeaseTableName"])["Table"][
        "TableArn"
    ]
    assert statements["ReadStream"]["Resource"] == found["StreamArn"]
    assert statements["EnhancedFanOut"]["Resource"] == (
        f"{found['StreamArn']}/consumer/{parameters['ApplicationName']}:*"
    )
    assert statements["LeaseTable"]["Resource"] == table_arn
    assert statements["DeadLetterQueue"]["Resource"].endswith(
        ":" + found["DeadLetterQueueUrl"].rsplit("/", 1)[-1]
    )
    assert all(
        resource.startswith(f"arn:aws:s3:::{found['AuditBucketName']}/")
        for resource in statements["AuditAndOverflowWrite"]["Resource"]
    )
