"""The Athena table over the audit objects `consumer backfill` writes (under
`<prefix>snapshot=<id>/`), derived from infra/athena/audit_table.sql so the columns and SerDe
are declared once. Substitute the same placeholders as for audit_table.sql:

    python -m consumer.snapshot.athena [infra/athena/audit_table.sql]
"""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_SOURCE = Path("infra/athena/audit_table.sql")

HEADER = """\
-- Athena table over the audit objects that `consumer backfill` writes: the table's items as
-- of a snapshot, one line per item, kept apart from the change history (audit_changes) so
-- that queries over changes never see snapshot copies. Generated from audit_table.sql by
-- `python -m consumer.snapshot.athena`: same columns, placeholders and SerDe.
--
-- Objects: s3://${AuditBucket}/${AuditPrefix}snapshot=<snapshot id>/table=<table>/
-- dt=<yyyy-MM-dd>/hour=<HH>/<segment or file>/<ordinal>-0.ndjson.gz. The snapshot id is the
-- one `consumer backfill` prints (snapshot=<table>-<UTC start time>); dt/hour are when the
-- backfill read the item. Each line is an audit line whose change is a synthetic MODIFY:
-- NewImage = the item, no OldImage, ApproximateCreationDateTime = the snapshot's version
-- (snapshot time minus backfill.version_margin_s), eventID snapshot:<id>:<part>:<ordinal>.
-- Every query must name the snapshot and the table:
--   WHERE snapshot = 'orders-20261205T172315Z' AND "table" = 'orders'
-- A part re-read after a crash writes its objects again under the same keys; count items
-- with count(DISTINCT event_id).
"""

# (what the audit table's DDL says, what the snapshot table's says instead)
_CHANGES = (
    (
        "CREATE EXTERNAL TABLE IF NOT EXISTS audit_changes (",
        "CREATE EXTERNAL TABLE IF NOT EXISTS audit_snapshots (",
    ),
    ("PARTITIONED BY (\n", "PARTITIONED BY (\n  snapshot string,\n"),
    (
        "  'projection.enabled' = 'true',\n",
        "  'projection.enabled' = 'true',\n  'projection.snapshot.type' = 'injected',\n",
    ),
    ("${AuditPrefix}table=${table}/", "${AuditPrefix}snapshot=${snapshot}/table=${table}/"),
)


class DdlShapeError(ValueError):
    """The audit DDL no longer has a part the snapshot table is derived from."""


def snapshot_table_ddl(audit_ddl: str) -> str:
    """The snapshot table's CREATE statement, from the audit table's DDL text."""
    start = audit_ddl.find("CREATE EXTERNAL TABLE")
    end = audit_ddl.find(");", start)
    if start < 0 or end < 0:
        raise DdlShapeError("no CREATE EXTERNAL TABLE statement in the audit DDL")
    statement = audit_ddl[start : end + 2]
    for old, new in _CHANGES:
        if statement.count(old) != 1:
            raise DdlShapeError(f"the audit DDL should contain {old.strip()!r} once")
        statement = statement.replace(old, new)
    return f"{HEADER}\n{statement}\n"


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else DEFAULT_SOURCE
    try:
        sys.stdout.write(snapshot_table_ddl(source.read_text()))
    except (OSError, DdlShapeError) as error:
        print(f"consumer.snapshot.athena: {source}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
