"""The CloudFormation template lets the task run `consumer backfill` as a one-off task: every
AWS call the backfill makes is allowed, on the stack's own resources only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "cloudformation" / "service.yaml"


def _template() -> dict[str, Any]:
    template, matches = decode_str(TEMPLATE.read_text())
    assert not matches and template is not None
    return dict(template)


def test_the_backfill_policy_allows_scan_export_and_reading_the_export_prefix() -> None:
    resources = _template()["Resources"]
    policy = resources["TaskBackfillPolicy"]["Properties"]
    assert policy["Roles"] == [{"Ref": "TaskRole"}]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    source = statements["BackfillSourceTable"]
    # The calls consumer/snapshot makes on the source table.
    assert set(source["Action"]) == {
        "dynamodb:DescribeTable",
        "dynamodb:Scan",
        "dynamodb:ExportTableToPointInTime",
    }
    assert "table/${SourceTableName}" in source["Resource"]["Fn::Sub"]
    assert statements["BackfillDescribeExport"]["Resource"]["Fn::Sub"].endswith(
        "table/${SourceTableName}/export/*"
    )
    objects = statements["BackfillExportObjects"]
    assert "s3:GetObject" in objects["Action"] and "s3:PutObject" in objects["Action"]
    assert objects["Resource"]["Fn::Sub"] == "${AuditBucket.Arn}/backfill-exports/*"


def test_the_task_knows_where_exports_go() -> None:
    container = _template()["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    environment = {
        entry["Name"]: entry["Value"] for entry in container["Environment"] if "Name" in entry
    }
    assert environment["CONSUMER_BACKFILL__EXPORT_BUCKET"] == {"Ref": "AuditBucket"}
    assert environment["CONSUMER_BACKFILL__EXPORT_PREFIX"] == "backfill-exports"
