-- Athena table over the audit sink's objects (consumer/pipeline/audit), and a view that keeps
-- one row per change.
--
-- Placeholders (replace before running; e.g.
--   envsubst '${AuditBucket} ${AuditPrefix} ${AuditStartDate}' < audit_table.sql):
--   ${AuditBucket}     the audit bucket name                       e.g. my-cdc-audit
--   ${AuditPrefix}     the sink's prefix, "" or ending in "/"      e.g. audit/
--   ${AuditStartDate}  first day with audit data, yyyy-MM-dd       e.g. 2024-07-01
-- Only those three: ${table}, ${dt} and ${hour} below are Athena's partition projection
-- placeholders and must stay as they are (in CloudFormation Fn::Sub, write them ${!table} ...).
--
-- Objects: s3://${AuditBucket}/${AuditPrefix}table=<table>/dt=<yyyy-MM-dd>/hour=<HH>/<shard>/
-- <first sequence number>-<sub-sequence>.ndjson.gz, one JSON object per line (gzip: Athena
-- decompresses .gz files by their extension). The partition is the hour the records ARRIVED in
-- Kinesis (ApproximateArrivalTimestamp; the change time for DynamoDB Streams sources), and
-- every line of an object lies in its object's partition.
--
-- Partitions are projected, never crawled or added: `table` is injected (every query must
-- say which table: WHERE "table" = 'orders'), dt is a date, hour an integer 0-23 written with
-- two digits. `table` is a reserved word: quote it ("table" in queries, `table` in DDL).
--
-- Columns follow the line format (consumer/pipeline/audit/lines.py). The line's own "table"
-- field is not declared: a data column may not share a partition column's name, and both
-- always hold the same value. `change` is the DynamoDB change record exactly as read;
-- the images (keys, newimage, oldimage) are declared as strings, so they come back as
-- DynamoDB typed JSON text: json_extract_scalar(change.dynamodb.keys, '$.pk.S').
-- SerDe properties: JSON keys match column and struct field names whatever their case
-- (awsRegion, NewImage); the sink writes only valid lines, but should a foreign file land
-- under the prefix, its bad lines are skipped instead of failing every query.
-- Run each statement on its own (Athena runs one statement per query).

CREATE EXTERNAL TABLE IF NOT EXISTS audit_changes (
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
  `table` string,
  dt      string,
  `hour`  int
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
  'projection.table.type' = 'injected',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '${AuditStartDate},NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = 's3://${AuditBucket}/${AuditPrefix}table=${table}/dt=${dt}/hour=${hour}/',
  'classification' = 'json',
  'compressionType' = 'gzip'
);

-- One row per change. A change can be stored more than once: the Kinesis destination may
-- deliver it twice (same eventID, another sequence number), and a consumer restart may write
-- records again in objects cut differently. All copies carry the same event_id; keep the one
-- that arrived first (then the lowest position). Sequence numbers are decimal strings longer
-- than any Athena numeric type, so they are ordered by length, then text.
-- Filter the view on "table" (pushed below the window, as it is a PARTITION BY column);
-- filters on dt/hour apply after de-duplication, so for a time range over a large table,
-- de-duplicate inside your own query instead (infra/athena/README.md shows how).
-- created_ts is created_at as a timestamp (millisecond precision); created_at_us is exact.
CREATE OR REPLACE VIEW audit_changes_dedup AS
SELECT
  event_id,
  event_name,
  region,
  created_at,
  created_at_us,
  from_iso8601_timestamp(created_at) AS created_ts,
  ttl_delete,
  stream,
  shard_id,
  sequence_number,
  sub_sequence_number,
  arrival_time,
  change,
  "table",
  dt,
  "hour"
FROM (
  SELECT
    a.*,
    row_number() OVER (
      PARTITION BY "table", event_id
      ORDER BY arrival_time ASC NULLS LAST, shard_id, length(sequence_number),
               sequence_number, sub_sequence_number
    ) AS copy
  FROM audit_changes a
)
WHERE copy = 1;
