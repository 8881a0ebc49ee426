"""How far behind the consumer is, from the lease table and the stream.

For every open shard lease, the first record after its checkpoint is read (GetRecords, Limit 1):
the consumer has not confirmed anything that arrived since, so its lag is at most now minus
that record's arrival (a checkpoint trails what the sinks hold by up to
`checkpoint_interval_s`: an overestimate, the safe side for a re-check). No record after the
checkpoint: that shard is caught up. A wait of at least that long lets every change made before
a difference was seen reach the sinks.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from botocore.exceptions import ClientError

from consumer.snapshot.stitch import _first_arrival_after, lease_table_leases

log = structlog.get_logger(__name__)


async def consumer_lag_s(dynamodb: Any, kinesis: Any, stream: str, lease_table: str) -> float:
    """The largest lag over the open shards, in seconds (0 when caught up)."""
    leases = await lease_table_leases(dynamodb, lease_table)
    now_us = time.time_ns() // 1000
    worst = 0.0
    for lease in leases:
        if lease.finished:
            continue
        try:
            arrival = await _first_arrival_after(kinesis, stream, lease)
        except ClientError as error:  # a shard trimmed or gone: nothing to wait for there
            log.debug("verify.lag_unknown", shard=lease.shard_id, error=str(error))
            continue
        if arrival:
            worst = max(worst, (now_us - arrival) / 1_000_000)
    return worst
