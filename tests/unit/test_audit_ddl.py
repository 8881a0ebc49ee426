"""The Athena DDL in infra/athena/ matches what the audit sink writes."""

from __future__ import annotations

import re
from pathlib import Path

from consumer.pipeline.audit.layout import ObjectLayout, Partition, partition_hour
from consumer.pipeline.audit.lines import LINE_FIELDS
from tests.unit.test_audit_support import change_event

DDL = (Path(__file__).parents[2] / "infra" / "athena" / "audit_table.sql").read_text()
TABLE = DDL[DDL.index("CREATE EXTERNAL TABLE") : DDL.index("CREATE OR REPLACE VIEW")]
VIEW = DDL[DDL.index("CREATE OR REPLACE VIEW") :]


def table_properties() -> dict[str, str]:
    return dict(re.findall(r"'([\w.]+)' = '([^']*)'", TABLE))


def test_every_line_field_is_a_column_and_table_is_the_partition() -> None:
    columns = TABLE[: TABLE.index("PARTITIONED BY")]
    for name in LINE_FIELDS:
        declared = re.search(rf"^\s+{name}\s", columns, re.MULTILINE) is not None
        assert declared == (name != "table"), name
    partitions = TABLE[TABLE.index("PARTITIONED BY") : TABLE.index("ROW FORMAT")]
    assert re.findall(r"`?(\w+)`?\s+(?:string|int)", partitions) == ["table", "dt", "hour"]


def test_the_location_template_is_the_sinks_key_layout() -> None:
    properties = table_properties()
    assert properties["projection.enabled"] == "true"
    assert properties["projection.table.type"] == "injected"
    assert properties["projection.dt.type"] == "date"
    assert properties["projection.dt.format"] == "yyyy-MM-dd"
    assert properties["projection.hour.type"] == "integer"
    assert properties["projection.hour.digits"] == "2"
    assert properties["projection.hour.range"] == "0,23"
    event = change_event(0)
    partition = Partition(partition_hour(event))
    key = ObjectLayout("audit/").object_key("orders", partition.hour, event.position, "e")
    location = (
        properties["storage.location.template"]
        .replace("${AuditBucket}", "bucket")
        .replace("${AuditPrefix}", "audit/")
        .replace("${table}", "orders")
        .replace("${dt}", partition.dt)
        .replace("${hour}", partition.hour_of_day)
    )
    assert f"s3://bucket/{key}".startswith(location)
    assert re.search(r"LOCATION 's3://\$\{AuditBucket\}/\$\{AuditPrefix\}'", TABLE)


def test_the_serde_is_openx_json() -> None:
    assert "ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'" in TABLE


def test_the_view_keeps_one_row_per_event_id() -> None:
    assert "audit_changes_dedup" in VIEW
    assert re.search(r'PARTITION BY "table", event_id', VIEW)
    assert "WHERE copy = 1" in VIEW
