"""`consumer compare latency`: end-to-end latency of change data capture, per read mode.

A probe is one item written into the source table that carries its own write time. For each
mode (efo and polling read the Kinesis stream, streams reads the table's DynamoDB stream) a
worker runs in-process with its sinks wrapped by a measuring sink, which notes when each sink
applied each probe. The report gives, per mode and sink, percentiles of the end-to-end latency
(write to apply) and of the consumer's share of it.

Modules, one concern each:
- `percentiles`: nearest-rank percentiles and a five-number summary.
- `clock`: the wall clock both write and apply times are read from.
- `probes`: the probe item format and its keys (`ProbeKeys`), read back from change events.
- `writer`: writes probes into the source table at a steady pace (blocking; run in a thread).
- `observer`: records, per sink, when each probe was applied; `MeasuringSink` feeds it.
- `report`: the result model and how observations become it.
- `render`: the text table and the JSON document.
- `session`: one mode's measurement: worker, warm-up, probes, wait, stop.
- `shards`: the open shards of the stream a mode reads (the warm-up covers each).
- `environment`: what the runner needs from where it runs (`Environment`, `ModeTarget`);
  `local_env` (per-mode resources on the local stack, the destination bridge) and `aws_env`
  (the configured endpoints, per-mode applications, cleanup) provide it.
- `runner`: all modes of one run, in order.
"""
