"""The CloudFormation template runs `consumer verify` daily when asked: a parameter-gated
EventBridge rule starting the service's task definition with the verify command, the calls
verify makes allowed on the stack's own tables, and an alarm on the metric verify emits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

from consumer.verify.metric import METRIC

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "cloudformation" / "service.yaml"


def _template() -> dict[str, Any]:
    template, matches = decode_str(TEMPLATE.read_text())
    assert not matches and template is not None
    return dict(template)


def test_the_verify_schedule_is_off_unless_a_schedule_is_given() -> None:
    template = _template()
    assert template["Parameters"]["VerifySchedule"]["Default"] == ""
    assert template["Conditions"]["VerifyScheduled"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "VerifySchedule"}, ""]}]
    }
    for name in ("VerifyScheduleRule", "VerifyScheduleRole", "VerifyDifferencesAlarm"):
        assert template["Resources"][name]["Condition"] == "VerifyScheduled", name


def test_the_rule_runs_consumer_verify_on_the_service_task_definition() -> None:
    rule = _template()["Resources"]["VerifyScheduleRule"]["Properties"]
    assert rule["ScheduleExpression"] == {"Ref": "VerifySchedule"}
    (target,) = rule["Targets"]
    assert target["EcsParameters"]["TaskDefinitionArn"] == {"Ref": "TaskDefinition"}
    assert target["EcsParameters"]["LaunchType"] == "FARGATE"
    text, variables = target["Input"]["Fn::Sub"]
    for repair, flag in (("", []), (',"--repair"', ["--repair"])):
        rendered = text.replace("${SourceTableName}", "orders").replace("${Repair}", repair)
        overrides = json.loads(rendered)["containerOverrides"]
        assert overrides == [
            {
                "name": "consumer",
                "command": ["verify", "--table", "orders", "--progress", "log", *flag],
            }
        ]
    assert variables["Repair"] == {"Fn::If": ["VerifyRepairOn", ',"--repair"', ""]}


def test_the_task_may_read_what_verify_reads_and_the_alarm_watches_its_metric() -> None:
    resources = _template()["Resources"]
    policy = resources["TaskVerifyPolicy"]["Properties"]
    assert policy["Roles"] == [{"Ref": "TaskRole"}]
    source = policy["PolicyDocument"]["Statement"][0]
    # DescribeTable (key schema), Scan (the shared table reader), BatchGetItem (re-checks).
    assert set(source["Action"]) == {
        "dynamodb:DescribeTable",
        "dynamodb:Scan",
        "dynamodb:BatchGetItem",
    }
    assert "table/${SourceTableName}" in source["Resource"]["Fn::Sub"]
    alarm = resources["VerifyDifferencesAlarm"]["Properties"]
    assert alarm["MetricName"] == METRIC
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    run_task = resources["VerifyScheduleRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    actions = {statement["Action"] for statement in run_task["Statement"]}
    assert actions == {"ecs:RunTask", "iam:PassRole"}
