"""The snapshot table's DDL (derived from infra/athena/audit_table.sql by
consumer/snapshot/athena.py) matches where `consumer backfill` writes audit objects."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from consumer.pipeline.audit.layout import ObjectLayout, Partition
from consumer.pipeline.audit.lines import LINE_FIELDS
from consumer.records import RecordPosition
from consumer.settings import Settings
from consumer.snapshot.athena import DdlShapeError, main, snapshot_table_ddl
from consumer.snapshot.backfill import backfill_settings

ROOT = Path(__file__).resolve().parents[2]
CHANGES = (ROOT / "infra" / "athena" / "audit_table.sql").read_text()
DDL = snapshot_table_ddl(CHANGES)


def _columns(ddl: str) -> str:
    table = ddl[ddl.index("CREATE EXTERNAL TABLE") :]
    return table[: table.index("PARTITIONED BY")]


def test_the_snapshot_table_has_the_change_tables_columns() -> None:
    def body(ddl: str) -> str:
        columns = _columns(ddl)
        return columns[columns.index("(") :]

    assert body(DDL) == body(CHANGES)
    for name in LINE_FIELDS:
        assert (re.search(rf"^\s+{name}\s", _columns(DDL), re.MULTILINE) is None) == (
            name == "table"
        )


def test_the_location_template_is_where_the_backfill_writes() -> None:
    settings = Settings(
        stream={"name": "s"},
        pipelines={"audit": {"enabled": True, "bucket": "bkt", "prefix": "audit/"}},
        dlq={"queue_url": "https://sqs/q"},
    )
    snapshot_id = "orders-20261205T172315Z"
    prefix = backfill_settings(settings, ("audit",), snapshot_id).pipelines.audit.prefix
    hour = 493_000
    position = RecordPosition(f"snapshot/{snapshot_id}", "segment-0003", "17")
    key = ObjectLayout(prefix).object_key("orders", hour, position, "e")
    partition = Partition(hour)
    template = dict(re.findall(r"'([\w.]+)' = '([^']*)'", DDL))["storage.location.template"]
    location = (
        template.replace("${AuditBucket}", "bkt")
        .replace("${AuditPrefix}", "audit/")
        .replace("${snapshot}", snapshot_id)
        .replace("${table}", "orders")
        .replace("${dt}", partition.dt)
        .replace("${hour}", partition.hour_of_day)
    )
    assert f"s3://bkt/{key}".startswith(location)
    # The change table's projection never reaches snapshot objects.
    assert "snapshot=" not in CHANGES.split("storage.location.template")[1].split("\n")[0]


def test_the_snapshot_table_adds_an_injected_snapshot_partition_and_keeps_the_rest() -> None:
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS audit_snapshots (" in DDL
    assert "PARTITIONED BY (\n  snapshot string,\n  `table` string," in DDL
    assert "'projection.snapshot.type' = 'injected'" in DDL
    assert "WHERE snapshot = " in DDL  # the header tells how to query it
    assert DDL.count("CREATE") == 1 and DDL.rstrip().endswith(");")


def test_an_audit_ddl_of_another_shape_is_refused_naming_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DdlShapeError, match="PARTITIONED BY"):
        snapshot_table_ddl(CHANGES.replace("PARTITIONED BY (", "PARTITIONED BY("))
    bad = tmp_path / "audit.sql"
    bad.write_text("SELECT 1;")
    assert main([str(bad)]) == 1
    assert "no CREATE EXTERNAL TABLE" in capsys.readouterr().err
    assert main([str(ROOT / "infra" / "athena" / "audit_table.sql")]) == 0
    assert capsys.readouterr().out == DDL
