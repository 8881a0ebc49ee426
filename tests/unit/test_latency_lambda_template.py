"""infra/cloudformation/lambda-streams.yaml (the Streams + Lambda baseline that `consumer
compare` measures against) agrees with the code it deploys: the function's environment loads
into valid Streams-mode Settings for every combination of sinks, the event source mapping has
the partial-failure options, and the role grants exactly what the mapping and the enabled
sinks need. cfn-lint itself runs in tests/unit/test_infra_lint.py (every template)."""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from consumer.settings import load_settings

cfnlint_decode = pytest.importorskip("cfnlint.decode", reason="needs cfn-lint (dev extra)")

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "cloudformation" / "lambda-streams.yaml"
STREAM_ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000"
REQUIRED = {
    "CodeS3Bucket": "artifacts",
    "CodeS3Key": "ddb-cdc-consumer.zip",
    "SourceTableStreamArn": STREAM_ARN,
}
SINKS = {
    "replication": {"ReplicaTableName": "orders-replica"},
    "audit": {"AuditBucketName": "orders-audit"},
    "search": {
        "SearchEndpoint": "https://search-orders.eu-west-1.es.amazonaws.com",
        "SearchDomainArn": "arn:aws:es:eu-west-1:123456789012:domain/orders",
    },
}
NO_VALUE = object()


def load_template() -> dict[str, Any]:
    template, matches = cfnlint_decode.decode_str(TEMPLATE.read_text())
    assert not matches, matches
    assert template is not None
    return dict(template)


class Resolver:
    """Evaluates Ref, Fn::GetAtt, Fn::Sub, Fn::If and conditions for given parameters; a
    resource's Ref is "<Logical>" and its attributes "<Logical.Attribute>"."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str]) -> None:
        self.template = template
        self.values: dict[str, Any] = {
            name: spec.get("Default") for name, spec in template["Parameters"].items()
        }
        self.values.update(parameters)
        assert all(value is not None for value in self.values.values()), self.values
        self.values.update(
            {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
        )

    def condition(self, name: str) -> bool:
        return self._test(self.template["Conditions"][name])

    def _test(self, expression: Any) -> bool:
        ((function, arguments),) = expression.items()
        if function == "Condition":
            return self.condition(arguments)
        if function == "Fn::Equals":
            left, right = (self.resolve(argument) for argument in arguments)
            return bool(str(left) == str(right))
        if function == "Fn::Not":
            return not self._test(arguments[0])
        if function == "Fn::And":
            return all(self._test(argument) for argument in arguments)
        raise AssertionError(f"unexpected condition function {function}")

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                if value == "AWS::NoValue":
                    return NO_VALUE
                # The queue's Ref is its URL, which the settings check: make it look real.
                return self.values.get(value, REALISTIC_REFS.get(value, f"<{value}>"))
            if key == "Fn::GetAtt":
                return f"<{value[0]}.{value[1]}>"
            if key == "Fn::If":
                name, then, otherwise = value
                return self.resolve(then if self.condition(name) else otherwise)
            if key == "Fn::Sub":
                text = value
                for name, replacement in self.values.items():
                    text = text.replace("${" + name + "}", str(replacement))
                assert "${" not in text, text
                return text
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def resource(self, name: str) -> dict[str, Any] | None:
        spec = self.template["Resources"][name]
        if "Condition" in spec and not self.condition(spec["Condition"]):
            return None
        resolved: dict[str, Any] = self.resolve(spec["Properties"])
        return resolved


REALISTIC_REFS = {"OnFailureQueue": "https://sqs.eu-west-1.amazonaws.com/123456789012/on-failure"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


COMBINATIONS = [
    frozenset(chosen)
    for size in range(len(SINKS) + 1)
    for chosen in itertools.combinations(SINKS, size)
]


def parameters(sinks: frozenset[str]) -> dict[str, str]:
    values = dict(REQUIRED)
    for sink in sinks:
        values.update(SINKS[sink])
    return values


@pytest.mark.parametrize("sinks", COMBINATIONS, ids=lambda s: "+".join(sorted(s)) or "none")
def test_the_environment_is_valid_streams_mode_settings(
    template: dict[str, Any], sinks: frozenset[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = Resolver(template, parameters(sinks))
    function = resolver.resource("Function")
    assert function is not None
    variables = function["Environment"]["Variables"]
    for name, value in variables.items():
        assert isinstance(value, str), (name, value)
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.stream.mode == "streams"
    assert settings.stream.dynamodb_stream_arn == STREAM_ARN
    assert settings.aws.region == "eu-west-1"
    assert set(settings.enabled_pipelines()) == sinks
    assert settings.dlq.queue_url == REALISTIC_REFS["OnFailureQueue"]
    if "search" in sinks:
        assert settings.pipelines.search.endpoint == SINKS["search"]["SearchEndpoint"]


def test_the_function_runs_the_lambda_handler(template: dict[str, Any]) -> None:
    function = Resolver(template, REQUIRED).resource("Function")
    assert function is not None
    assert function["Runtime"] == "python3.11"
    module, _, name = function["Handler"].rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))
    assert function["Code"] == {"S3Bucket": "artifacts", "S3Key": "ddb-cdc-consumer.zip"}


def test_the_mapping_reports_partial_failures_with_the_documented_defaults(
    template: dict[str, Any],
) -> None:
    mapping = Resolver(template, REQUIRED).resource("EventSourceMapping")
    assert mapping is not None
    assert mapping["EventSourceArn"] == STREAM_ARN
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": "<OnFailureQueue.Arn>"}}
    # FACTS.md: BatchSize 100; the rest are Lambda's own defaults; bisection on.
    assert {key: str(mapping[key]) for key in (
        "BatchSize", "MaximumBatchingWindowInSeconds", "ParallelizationFactor",
        "BisectBatchOnFunctionError", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds",
        "StartingPosition",
    )} == {
        "BatchSize": "100", "MaximumBatchingWindowInSeconds": "0", "ParallelizationFactor": "1",
        "BisectBatchOnFunctionError": "true", "MaximumRetryAttempts": "-1",
        "MaximumRecordAgeInSeconds": "-1", "StartingPosition": "TRIM_HORIZON",
    }  # fmt: skip


def statements(role: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        statement["Sid"]: statement
        for policy in role["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    }


def actions(statement: Mapping[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def test_the_role_reads_only_the_table_stream_and_sends_only_to_its_queue(
    template: dict[str, Any],
) -> None:
    role = Resolver(template, REQUIRED).resource("FunctionRole")
    assert role is not None
    granted = statements(role)
    assert set(granted) == {"ReadTableStream", "OnFailureDestination", "Logs"}
    assert actions(granted["ReadTableStream"]) == {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    }
    assert granted["ReadTableStream"]["Resource"] == STREAM_ARN
    assert actions(granted["OnFailureDestination"]) == {"sqs:SendMessage"}
    assert granted["OnFailureDestination"]["Resource"] == "<OnFailureQueue.Arn>"
    assert granted["Logs"]["Resource"] == "<LogGroup.Arn>"


def test_each_enabled_sink_gets_the_task_roles_permissions_for_it(
    template: dict[str, Any],
) -> None:
    role = Resolver(template, parameters(frozenset(SINKS))).resource("FunctionRole")
    assert role is not None
    granted = statements(role)
    assert granted["ReplicaTable"]["Resource"] == (
        "arn:aws:dynamodb:eu-west-1:123456789012:table/orders-replica"
    )
    assert actions(granted["AuditWrite"]) == {"s3:PutObject"}
    assert granted["AuditWrite"]["Resource"] == "arn:aws:s3:::orders-audit/audit/*"
    assert granted["OpenSearchHttp"]["Resource"] == (
        "arn:aws:es:eu-west-1:123456789012:domain/orders/*"
    )
    for statement in granted.values():
        assert statement["Effect"] == "Allow"
        assert statement["Resource"] != "*"
