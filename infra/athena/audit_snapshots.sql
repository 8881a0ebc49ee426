-- Athena table over the audit objects that `consumer backfill` writes: the table's items as
-- of a snapshot, one line per item, kept apart from the change history (audit_table.sql) so
-- that queries over changes never see snapshot copies.
--
-- Placeholders (replace before running; e.g.
--   envsubst '${AuditBucket} ${AuditPrefix} ${AuditStartDate}' < audit_snapshots.sql):
--   ${AuditBucket}     the audit bucket name                       e.g. my-cdc-audit
--   ${AuditPrefix}     the sink's prefix, "" or ending in "/"      e.g. audit/
--   ${AuditStartDate}  first day with audit data, yyyy-MM-dd       e.g. 2024-07-01
-- ${snapshot}, ${table}, ${dt} and ${hour} are Athena's partition projection placeholders.
--
-- Objects: s3://${AuditBucket}/${AuditPrefix}snapshot=<snapshot id>/table=<table>/
-- dt=<yyyy-MM-dd>/hour=<HH>/<segment or file>/<ordinal>-0.ndjson.gz. The snapshot id is the
-- one `consumer backfill` prints (snapshot=<table>-<UTC start time>); dt/hour are when the
-- backfill read the item. Each line is an audit line (consumer/pipeline/audit/lines.py) whose
-- change is a synthetic MODIFY: NewImage = the item, no OldImage, ApproximateCreationDateTime
-- = the snapshot's version (snapshot time minus backfill.version_margin_s), eventID
-- snapshot:<id>:<part>:<ordinal>, and a top-level "snapshot" field.
-- Every query must name the snapshot and the table:
--   WHERE snapshot = 'orders-20261205T172315Z' AND "table" = 'orders'
-- A part re-read after a crash writes its objects again under the same keys; count items
-- with count(DISTINCT event_id).

CREATE EXTERNAL TABLE IF NOT EXISTS audit_snapshots (
  event_id            string,
  event_name          string,
  region              string,
  created_at          string,
  created_at_us       bigint,
  ttl_delete          boolean,
  stream              string,
  shard_id            string,
  sequence_number     string,
  sub_sequence_number bigint,
  arrival_time        string,
  change struct<
    awsregion:string,
    eventid:string,
    eventname:string,
    eventsource:string,
    recordformat:string,
    tablename:string,
    useridentity:struct<type:string,principalid:string>,
    dynamodb:struct<
      approximatecreationdatetime:bigint,
      approximatecreationdatetimeprecision:string,
      sizebytes:bigint,
      keys:string,
      newimage:string,
      oldimage:string
    >
  >
)
PARTITIONED BY (
  snapshot string,
  `table`  string,
  dt       string,
  `hour`   int
)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES (
  'case.insensitive' = 'true',
  'ignore.malformed.json' = 'true'
)
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://${AuditBucket}/${AuditPrefix}'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.snapshot.type' = 'injected',
  'projection.table.type' = 'injected',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '${AuditStartDate},NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = 's3://${AuditBucket}/${AuditPrefix}snapshot=${snapshot}/table=${table}/dt=${dt}/hour=${hour}/',
  'classification' = 'json',
  'compressionType' = 'gzip'
);
