"""infra/cloudformation/service.yaml agrees with the code it deploys.

The template is read as CloudFormation reads it and the parts that matter to the service are
resolved for each combination of its switches (a small resolver of Ref, Fn::GetAtt, Fn::Sub,
Fn::If and conditions; resources resolve to placeholders). The container's environment must
load into a valid `Settings`, the lease table must be `lease_table_definition`, the alarms must
select the metrics `emf_line` writes, and so on. The deploy test (tests/integration/
test_infra_deploy.py) checks what moto can deploy; this checks everything, moto or not.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

# cfn-lint (dev extra) reads templates as CloudFormation does, short-form tags included.
from cfnlint.decode import decode_str
from pydantic import BaseModel

from checkpoints.table import lease_table_definition
from consumer.cli.health_cmd import register as register_health
from consumer.pipeline.replication import EXPIRES_AT
from consumer.settings import Settings, SettingsError, load_settings
from consumer.telemetry.metrics import Snapshot, emf_line
from consumer.verify.metric import emf_lines
from consumer.verify.model import PipelineTally

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "cloudformation" / "service.yaml"

Template = dict[str, Any]
NO_VALUE = object()  # AWS::NoValue: the enclosing key or list item disappears

SWITCHES = ("EnableReplication", "EnableOpenSearch", "CreateSourceTable")


def load_template() -> Template:
    template, matches = decode_str(TEMPLATE.read_text())
    assert not matches, matches
    assert template is not None
    return template


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template()


class Resolver:
    """Evaluates the intrinsic functions this template uses, for given parameter values.

    A resource's Ref is "<Logical>" and its attributes "<Logical.Attribute>", so a test can
    tell which resource a value names; the few the settings read (REALISTIC_REFS) look like
    real names, ARNs and URLs."""

    def __init__(self, template: Template, parameters: Mapping[str, str]) -> None:
        self.template = template
        self.values: dict[str, Any] = {
            name: spec.get("Default") for name, spec in template["Parameters"].items()
        }
        self.values.update(parameters)
        missing = [name for name, value in self.values.items() if value is None]
        assert not missing, f"no value for parameters {missing}"
        self.values.update(
            {
                "AWS::Region": "eu-west-1",
                "AWS::AccountId": "123456789012",
                "AWS::Partition": "aws",
                "AWS::StackName": "stack",
            }
        )
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = self._test(self.template["Conditions"][name])
        return self._conditions[name]

    def _test(self, expression: Any) -> bool:
        ((function, arguments),) = expression.items()
        if function == "Condition":
            return self.condition(arguments)
        if function == "Fn::Equals":
            left, right = (str(self.resolve(argument)) for argument in arguments)
            return left == right
        if function == "Fn::Not":
            return not self._test(arguments[0])
        if function == "Fn::And":
            return all(self._test(argument) for argument in arguments)
        if function == "Fn::Or":
            return any(self._test(argument) for argument in arguments)
        raise AssertionError(f"unexpected condition function {function}")

    def exists(self, logical_id: str) -> bool:
        condition = self.template["Resources"][logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.values:
            return self.values[name]
        assert self.exists(name), f"Ref to {name}, which this configuration does not create"
        return REALISTIC_REFS.get(name, f"<{name}>")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        assert self.exists(logical_id), f"GetAtt of {logical_id}, which is not created"
        return REALISTIC_ATTRIBUTES.get((logical_id, attribute), f"<{logical_id}.{attribute}>")

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                return self._get_att(*name.split(".", 1))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return self._ref(value)
            if key == "Fn::GetAtt":
                parts = value.split(".", 1) if isinstance(value, str) else value
                return self._get_att(*parts)
            if key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else value
                return self._sub(text, variables)
            if key == "Fn::If":
                name, when_true, when_false = value
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Select":
                index, items = value
                return self.resolve(items)[int(index)]
            if key == "Fn::Split":
                separator, text = value
                return str(self.resolve(text)).split(separator)
            if key == "Fn::Join":
                separator, items = value
                return separator.join(str(item) for item in self.resolve(items))
            if key == "Condition":
                return node
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def properties(self, logical_id: str) -> dict[str, Any]:
        properties: dict[str, Any] = self.resolve(
            self.template["Resources"][logical_id].get("Properties", {})
        )
        return properties


# What the settings read must look like the real thing (the settings check names, ARNs and
# URLs against AWS's rules); every other resource resolves to "<Logical>" / "<Logical.Attr>".
REALISTIC_REFS = {
    "ChangeStream": "orders-cdc-changes",
    "LeaseTable": "orders-cdc-leases",
    "ReplicaTable": "orders-replica",
    "AuditBucket": "orders-cdc-audit-123456789012",
    "DeadLetterQueue": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders-cdc-dlq",
}
STREAM_ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/orders-cdc-changes"
SEARCH_HOST = "search-orders-cdc-abc123.eu-west-1.es.amazonaws.com"
REALISTIC_ATTRIBUTES = {
    ("ChangeStream", "Arn"): STREAM_ARN,
    ("SearchDomain", "DomainEndpoint"): SEARCH_HOST,
}


def configurations() -> Iterator[dict[str, str]]:
    for values in itertools.product(("true", "false"), repeat=len(SWITCHES)):
        yield dict(zip(SWITCHES, values, strict=True))


BASE_PARAMETERS = {
    "ApplicationName": "orders-cdc",
    "ContainerImage": "registry.example/ddb-cdc-consumer:0.1.0",
    "SourceTableName": "orders",
    "VpcId": "vpc-0123",
    "SubnetIds": "subnet-a,subnet-b",
}


def resolver(template: Template, **overrides: str) -> Resolver:
    parameters = dict(BASE_PARAMETERS)
    parameters.update(overrides)
    return Resolver(template, parameters)


def container(resolver: Resolver) -> dict[str, Any]:
    (definition,) = resolver.properties("TaskDefinition")["ContainerDefinitions"]
    return dict(definition)


def environment(resolver: Resolver) -> dict[str, str]:
    pairs = container(resolver)["Environment"]
    names = [pair["Name"] for pair in pairs]
    assert len(names) == len(set(names)), f"duplicate variables: {names}"
    return {pair["Name"]: str(pair["Value"]) for pair in pairs}


def settings_from(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    # Only the container's variables: none of this machine's CONSUMER_... may leak in.
    for name in list(os.environ):
        if name.startswith("CONSUMER_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def setting_exists(variable: str) -> bool:
    """Whether CONSUMER_A__B__C names a field a.b.c of Settings (pydantic-settings would
    silently ignore a misspelt one)."""
    assert variable.startswith("CONSUMER_")
    model: type[BaseModel] = Settings
    parts = variable.removeprefix("CONSUMER_").lower().split("__")
    for index, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if index < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


# --- the container's environment is a valid Settings that names the stack's resources -------


@pytest.mark.parametrize("switches", list(configurations()), ids=lambda s: ",".join(s.values()))
def test_container_environment_loads_into_settings(
    template: Template, switches: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = resolver(template, **switches)
    env = environment(resolved)
    unknown = [name for name in env if not setting_exists(name)]
    assert not unknown, f"variables that name no setting: {unknown}"

    try:
        settings = settings_from(env, monkeypatch)
    except SettingsError as error:  # pragma: no cover - the message is the diagnosis
        pytest.fail(f"the template's environment is not valid settings:\n{error}")

    assert settings.application == "orders-cdc"
    assert settings.aws.region == "eu-west-1"
    assert settings.stream.name == REALISTIC_REFS["ChangeStream"]
    assert settings.stream.arn == STREAM_ARN
    assert settings.stream.mode == "efo"
    assert settings.lease_table == REALISTIC_REFS["LeaseTable"]
    assert settings.pipelines.audit.enabled
    assert settings.pipelines.audit.bucket == REALISTIC_REFS["AuditBucket"]
    assert settings.dlq.queue_url == REALISTIC_REFS["DeadLetterQueue"]
    assert settings.dlq.overflow_bucket == REALISTIC_REFS["AuditBucket"]
    replication = switches["EnableReplication"] == "true"
    assert settings.pipelines.replication.enabled is replication
    assert settings.pipelines.replication.table == (
        REALISTIC_REFS["ReplicaTable"] if replication else None
    )
    search = switches["EnableOpenSearch"] == "true"
    assert settings.pipelines.search.enabled is search
    assert settings.pipelines.search.endpoint == (f"https://{SEARCH_HOST}" if search else None)


def test_efo_consumer_is_the_one_the_service_looks_for(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = resolver(template)
    settings = settings_from(environment(resolved), monkeypatch)
    consumer = resolved.properties("StreamConsumer")
    assert consumer["ConsumerName"] == settings.consumer_name
    assert consumer["StreamARN"] == settings.stream.arn
    # Tasks start only once the consumer exists, or they would register it first and the
    # stack's StreamConsumer would fail as a duplicate.
    resources = template["Resources"]
    assert resources["Service"]["DependsOn"] == "StreamConsumerReady"
    assert resolved.resolve(resources["StreamConsumerReady"]["Metadata"]) == {
        "StreamConsumer": "<StreamConsumer>"
    }
    role = resolved.properties("TaskRole")
    statements = {s["Sid"]: s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]}
    assert statements["EnhancedFanOut"]["Resource"] == (
        f"{STREAM_ARN}/consumer/{settings.consumer_name}:*"
    )
    assert {"kinesis:SubscribeToShard", "kinesis:DescribeStreamConsumer"} <= set(
        statements["EnhancedFanOut"]["Action"]
    )
    assert {
        "kinesis:ListShards",
        "kinesis:GetShardIterator",
        "kinesis:GetRecords",
        "kinesis:DescribeStreamSummary",
        "kinesis:RegisterStreamConsumer",
    } <= set(statements["ReadStream"]["Action"])


def test_polling_creates_no_consumer(template: Template, monkeypatch: pytest.MonkeyPatch) -> None:
    resolved = resolver(template, ReadMode="polling")
    assert settings_from(environment(resolved), monkeypatch).stream.mode == "polling"
    assert not resolved.exists("StreamConsumer")
    assert resolved.resolve(template["Resources"]["StreamConsumerReady"]["Metadata"]) == {}


def test_stop_timeout_matches_the_drain_budget(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = resolver(template)
    settings = settings_from(environment(resolved), monkeypatch)
    assert container(resolved)["StopTimeout"] == settings.stop_timeout_s == 30


def test_health_check_is_consumer_health_on_the_health_port(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = resolver(template)
    definition = container(resolved)
    assert definition["HealthCheck"]["Command"] == ["CMD", "consumer", "health"]
    settings = settings_from(environment(resolved), monkeypatch)
    parser = argparse.ArgumentParser()
    register_health(parser.add_subparsers())
    health_default_port = parser.parse_args(["health"]).port
    # `consumer health` takes no --port in the check, so the worker must serve its default.
    assert settings.telemetry.health_port == health_default_port
    assert definition["PortMappings"][0]["ContainerPort"] == health_default_port


def test_container_runs_unprivileged_on_a_read_only_root(template: Template) -> None:
    definition = container(resolver(template))
    assert definition["ReadonlyRootFilesystem"] is True
    assert definition["User"] == "10001:10001"  # the user infra/Dockerfile creates
    assert {m["ContainerPath"] for m in definition["MountPoints"]} == {"/tmp"}
    assert definition["Command"] == ["run"]


# --- tables ---------------------------------------------------------------------------------


def test_lease_table_is_lease_table_definition(template: Template) -> None:
    properties = resolver(template).properties("LeaseTable")
    expected = lease_table_definition("<name>")
    for key in ("AttributeDefinitions", "KeySchema", "BillingMode"):
        assert properties[key] == expected[key], key
    assert set(expected) - {"TableName"} <= set(properties)
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


@pytest.mark.parametrize("sort_key", ["", "sk"])
def test_replica_table_has_the_source_key_and_tombstone_ttl(
    template: Template, sort_key: str
) -> None:
    resolved = resolver(template, SortKeyName=sort_key, SortKeyType="N", PartitionKeyType="S")
    source = resolved.properties("SourceTable")
    replica = resolved.properties("ReplicaTable")
    assert replica["KeySchema"] == source["KeySchema"]
    assert replica["AttributeDefinitions"] == source["AttributeDefinitions"]
    assert len(replica["KeySchema"]) == (2 if sort_key else 1)
    assert replica["TimeToLiveSpecification"] == {"AttributeName": EXPIRES_AT, "Enabled": True}
    assert replica["BillingMode"] == "PAY_PER_REQUEST"


def test_source_table_streams_to_kinesis_in_microseconds(template: Template) -> None:
    resolved = resolver(template)
    source = resolved.properties("SourceTable")
    assert source["KinesisStreamSpecification"] == {
        "StreamArn": STREAM_ARN,
        "ApproximateCreationDateTimePrecision": "MICROSECOND",
    }
    assert "StreamSpecification" not in source
    with_stream = resolver(template, EnableDynamoDBStream="true").properties("SourceTable")
    assert with_stream["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert not resolver(template, CreateSourceTable="false").exists("SourceTable")


def test_stream_is_on_demand_with_bounded_retention(template: Template) -> None:
    retention = template["Parameters"]["RetentionHours"]
    assert (retention["MinValue"], retention["MaxValue"]) == (24, 8760)
    stream = resolver(template, RetentionHours="8760").properties("ChangeStream")
    assert stream["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert stream["RetentionPeriodHours"] == "8760"
    assert "ShardCount" not in stream


# --- bucket and queue -------------------------------------------------------------------------


def test_audit_bucket_is_private_encrypted_and_expires(template: Template) -> None:
    resolved = resolver(template, AuditTransitionDays="60", AuditExpirationDays="730")
    bucket = resolved.properties("AuditBucket")
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    audit = rules["audit-trail"]
    assert audit["Prefix"] == "audit/"
    assert audit["Transitions"][0]["TransitionInDays"] == "60"
    assert audit["ExpirationInDays"] == "730"
    assert "dlq-overflow/" in {r.get("Prefix") for r in rules.values()}
    policy = resolved.properties("AuditBucketPolicy")["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy
    )


def test_task_role_writes_only_under_the_audit_and_overflow_prefixes(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = resolver(template)
    settings = settings_from(environment(resolved), monkeypatch)
    role = resolved.properties("TaskRole")
    statements = {s["Sid"]: s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]}
    assert statements["AuditAndOverflowWrite"]["Resource"] == [
        f"<AuditBucket.Arn>/{settings.pipelines.audit.prefix}*",
        f"<AuditBucket.Arn>/{settings.dlq.overflow_prefix}*",
    ]
    assert statements["DeadLetterQueue"]["Resource"] == "<DeadLetterQueue.Arn>"
    assert statements["LeaseTable"]["Resource"] == "<LeaseTable.Arn>"
    for statement in statements.values():
        assert statement["Resource"] != "*", statement["Sid"]


# --- alarms and scaling read the metrics the service writes -----------------------------------


def emitted_metrics() -> set[str]:
    import orjson

    line = orjson.loads(emf_line("ns", "app", 0, Snapshot(), Snapshot(), 60.0))
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["Application"]]
    return {metric["Name"] for metric in directive["Metrics"]} | verify_metrics()


def verify_metrics() -> set[str]:
    """`consumer verify`'s own EMF line (the scheduled verify's alarm), by Application too."""
    import orjson

    from consumer.verify.model import VerifyReport

    (line,) = emf_lines("ns", "app", 0, VerifyReport("t", "s", {"search": PipelineTally("search")}))
    (directive,) = orjson.loads(line)["_aws"]["CloudWatchMetrics"]
    assert ["Application"] in directive["Dimensions"]
    return {metric["Name"] for metric in directive["Metrics"]}


def test_alarms_select_metrics_the_service_emits(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = resolver(template)
    settings = settings_from(environment(resolved), monkeypatch)
    assert template["Parameters"]["MetricsNamespace"]["Default"] == settings.telemetry.emf_namespace
    metrics = emitted_metrics()
    alarms = [
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    ]
    custom = 0
    for logical_id in alarms:
        alarm = resolved.properties(logical_id)
        if alarm["Namespace"] == "AWS/SQS":
            assert alarm["Dimensions"] == [
                {"Name": "QueueName", "Value": "<DeadLetterQueue.QueueName>"}
            ]
            continue
        custom += 1
        assert alarm["Namespace"] == settings.telemetry.emf_namespace, logical_id
        assert alarm["MetricName"] in metrics, logical_id
        assert alarm["Dimensions"] == [{"Name": "Application", "Value": settings.application}]
    assert custom == 7


def test_the_three_operational_alarms(template: Template) -> None:
    resolved = resolver(template)
    lag = resolved.properties("LagAlarm")
    assert (lag["MetricName"], lag["Statistic"]) == ("MillisBehindLatest", "Maximum")
    assert lag["ComparisonOperator"] == "GreaterThanThreshold"
    dlq = resolved.properties("DlqDepthAlarm")
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert (dlq["ComparisonOperator"], dlq["Threshold"]) == ("GreaterThanThreshold", 0)
    leases = resolved.properties("NoLeasesAlarm")
    assert (leases["MetricName"], leases["Statistic"]) == ("LeasesHeld", "Sum")
    assert (leases["ComparisonOperator"], leases["Threshold"]) == ("LessThanOrEqualToThreshold", 0)
    assert leases["TreatMissingData"] == "breaching"
    assert "AlarmActions" not in leases
    notified = resolver(template, AlarmTopicArn="arn:aws:sns:eu-west-1:123456789012:pager")
    assert notified.properties("NoLeasesAlarm")["AlarmActions"] == [
        "arn:aws:sns:eu-west-1:123456789012:pager"
    ]


def test_autoscaling_follows_lag_within_the_task_bounds(template: Template) -> None:
    resolved = resolver(template, MinTasks="2", MaxTasks="8")
    target = resolved.properties("ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == ("2", "8")
    assert target["ResourceId"] == "service/<Cluster>/<Service.Name>"
    out = resolved.properties("LagScaleOutAlarm")
    assert out["AlarmActions"] == ["<ScaleOutPolicy>"]
    assert out["MetricName"] == "MillisBehindLatest"
    scale_in = resolved.properties("LagScaleInAlarm")
    assert scale_in["AlarmActions"] == ["<ScaleInPolicy>"]
    assert scale_in["TreatMissingData"] == "notBreaching"  # never scale in on silence


# --- OpenSearch -------------------------------------------------------------------------------


def test_opensearch_domain_is_encrypted_https_only_and_iam_gated(template: Template) -> None:
    resolved = resolver(template, EnableOpenSearch="true")
    domain = resolved.properties("SearchDomain")
    assert domain["EncryptionAtRestOptions"] == {"Enabled": True}
    assert domain["NodeToNodeEncryptionOptions"] == {"Enabled": True}
    assert domain["DomainEndpointOptions"]["EnforceHTTPS"] is True
    (statement,) = domain["AccessPolicies"]["Statement"]
    assert statement["Principal"] == {"AWS": "<TaskRole.Arn>"}
    policy = resolved.properties("TaskSearchPolicy")
    assert policy["PolicyDocument"]["Statement"][0]["Resource"] == "<SearchDomain.Arn>/*"
    assert not resolver(template).exists("SearchDomain")


# --- issue 20.5: least privilege and tamper resistance -------------------------------------


def execution_statements(template: Template, image: str) -> dict[str, Any]:
    resolved = resolver(template, ContainerImage=image)
    (policy,) = resolved.properties("ExecutionRole")["Policies"]
    return {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/ddb-cdc-consumer:0.1.0", "ddb-cdc-consumer"),
        ("210987654321.dkr.ecr.us-east-2.amazonaws.com/team/consumer@sha256:" + "a" * 64, None),
    ],
)
def test_ecr_pull_is_scoped_to_the_images_repository(
    template: Template, image: str, repository: str | None
) -> None:
    statements = execution_statements(template, image)
    account, _, _, region = image.split("/")[0].split(".")[:4]
    name = repository or "team/consumer"
    assert statements["EcrPull"]["Resource"] == (
        f"arn:aws:ecr:{region}:{account}:repository/{name}"
    )
    assert statements["EcrToken"]["Action"] == "ecr:GetAuthorizationToken"


def test_an_image_outside_ecr_gets_no_ecr_permissions(template: Template) -> None:
    statements = execution_statements(template, "registry.example/ddb-cdc-consumer:0.1.0")
    assert set(statements) == {"Logs"}


def test_the_domain_policy_names_this_domain_only(template: Template) -> None:
    resolved = resolver(template, EnableOpenSearch="true")
    domain = resolved.properties("SearchDomain")
    (statement,) = domain["AccessPolicies"]["Statement"]
    assert domain["DomainName"] == "ddb-cdc-consumer-search"
    assert statement["Resource"] == (
        "arn:aws:es:eu-west-1:123456789012:domain/ddb-cdc-consumer-search/*"
    )


def test_audit_objects_are_locked_and_written_to_our_account_only(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = resolver(template)
    bucket = resolved.properties("AuditBucket")
    assert bucket["ObjectLockEnabled"] is True
    retention = bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention == {"Mode": "GOVERNANCE", "Days": 30}
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    # The task can neither bypass governance retention nor change a version's retention.
    task_actions = {
        action
        for name in ("TaskRole",)
        for policy in resolved.properties(name).get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
    }
    assert not {
        a for a in task_actions if "Retention" in a or a in ("s3:*", "s3:DeleteObjectVersion")
    }
    settings = settings_from(environment(resolved), monkeypatch)
    assert settings.pipelines.audit.expected_bucket_owner == "123456789012"


def test_the_lambda_on_failure_queue_takes_tls_only() -> None:
    lambda_template, matches = decode_str(
        (ROOT / "infra" / "cloudformation" / "lambda-streams.yaml").read_text()
    )
    assert not matches and lambda_template is not None
    policy = lambda_template["Resources"]["OnFailureQueuePolicy"]["Properties"]
    assert policy["Queues"] == [{"Ref": "OnFailureQueue"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_make_checkov_scans_both_templates_with_opensearch_on() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = makefile.split("\ncheckov:", 1)[1].split("\n\n", 1)[0]
    assert "-f infra/cloudformation/lambda-streams.yaml" in target
    assert "-f build/service-opensearch.yaml" in target
    assert 's/Default: "false"/Default: "true"/' in target


SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders/search-AbCdEf"


def test_the_search_password_comes_from_secrets_manager(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20.5: the password is injected by ECS from the secret (task definition
    `Secrets:`), read by the execution role for this secret only, and never in the template."""
    resolved = resolver(
        template,
        EnableOpenSearch="true",
        OpenSearchUsername="consumer",
        OpenSearchPasswordSecretArn=SECRET_ARN,
        ContainerImage="123456789012.dkr.ecr.eu-west-1.amazonaws.com/ddb-cdc-consumer:0.1.0",
    )
    definition = container(resolved)
    assert definition["Secrets"] == [
        {"Name": "CONSUMER_PIPELINES__SEARCH__PASSWORD", "ValueFrom": f"{SECRET_ARN}:password::"}
    ]
    env = environment(resolved)
    assert "CONSUMER_PIPELINES__SEARCH__PASSWORD" not in env
    settings = settings_from(env, monkeypatch)
    search = settings.pipelines.search
    assert (search.auth, search.username, search.password_secret_arn) == (
        "basic",
        "consumer",
        SECRET_ARN,
    )
    (policy,) = resolved.properties("ExecutionRole")["Policies"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["SearchPassword"] == {
        "Sid": "SearchPassword",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": SECRET_ARN,
    }
    security = resolved.properties("SearchDomain")["AdvancedSecurityOptions"]
    assert security["MasterUserOptions"]["MasterUserPassword"] == (
        "{{resolve:secretsmanager:" + SECRET_ARN + ":SecretString:password}}"
    )


def test_without_a_secret_the_service_signs_and_reads_no_secret(template: Template) -> None:
    resolved = resolver(template, EnableOpenSearch="true")
    assert "Secrets" not in container(resolved)
    assert environment(resolved)["CONSUMER_PIPELINES__SEARCH__AUTH"] == "sigv4"
    assert "AdvancedSecurityOptions" not in resolved.properties("SearchDomain")
