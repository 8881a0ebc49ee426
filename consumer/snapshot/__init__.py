"""Snapshots of the source table: the shared parallel reader (Scan or export) that `consumer
backfill` applies through the versioned sinks and `consumer verify` compares with them."""
