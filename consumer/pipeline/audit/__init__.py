"""The audit pipeline: every change as gzip NDJSON in S3, partitioned for Athena.

- `AuditSink` (sink.py): the Sink; buffers per shard and table, writes at `flush`.
- `AuditSection`, `AuditSettings` (settings.py): the `pipelines.audit` section (bucket,
  prefix, buffer limits, encryption) and the sink's own knobs (compression, retries).
- `audit_line` (lines.py): the line format. `ObjectLayout` (layout.py): partitions and keys.
- infra/athena/audit_table.sql: the matching Athena table and de-duplicating view.
"""

from consumer.pipeline.audit.layout import ObjectLayout, Partition, partition_hour
from consumer.pipeline.audit.lines import LINE_FIELDS, LineError, audit_line, iso_utc_us
from consumer.pipeline.audit.settings import AuditSection, AuditSettings
from consumer.pipeline.audit.sink import AuditSink, AuditStats
from consumer.pipeline.audit.store import ObjectStore, StoreFactory

__all__ = [
    "LINE_FIELDS",
    "AuditSection",
    "AuditSettings",
    "AuditSink",
    "AuditStats",
    "LineError",
    "ObjectLayout",
    "ObjectStore",
    "Partition",
    "StoreFactory",
    "audit_line",
    "iso_utc_us",
    "partition_hour",
]
