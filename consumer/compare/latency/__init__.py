"""`consumer compare latency`: end-to-end latency of change data capture, per read mode.

A probe is an item written into the source table that carries its own write time; for each
mode (efo, polling, streams) a worker runs in-process with its sinks wrapped by a measuring
sink, and the report gives, per mode and sink, percentiles of the latency (docs/latency.md).
`runner` runs the modes in an `environment` (`local_env` or `aws_env`), `session` measures one.
"""
