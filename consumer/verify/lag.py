"""How far behind the consumer is: for every open shard lease, now minus the arrival of the
first record after its checkpoint (none: caught up). A checkpoint trails what the sinks hold, so
this overestimates, the safe side for a re-check: waiting that long lets every change made
before a difference was seen reach the sinks.
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
