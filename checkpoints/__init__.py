"""Leases and checkpoints: N workers share a Kinesis stream's shards through a DynamoDB table.

The worker runtime needs only this much:

    settings = LeaseSettings(application_name="orders-cdc", stream_name="orders")

    async def process(handle: LeaseHandle) -> None:
        # Read handle.shard_id from handle.start_position (TRIM_HORIZON, LATEST,
        # AT_TIMESTAMP or AFTER_SEQUENCE_NUMBER). After each durable batch:
        #     await handle.checkpoint(last.sequence_number, last.sub_sequence_number)
        # At the end of a closed shard:  await handle.checkpoint_shard_end(child_ids); return
        # When handle.stop_requested is set, stop as LeaseHandle says for handle.stop_reason.
        ...

    # clients: makes aiobotocore clients (consumer.aws.AwsEndpoints); lister: a ShardLister
    # (consumer.aws.shards.KinesisShardLister or StreamsShardLister).
    async with (
        LeaseTable.open(clients, settings.lease_table, settings.retry) as table,
        Coordinator(settings, table, lister, process) as coordinator,
    ):
        await stop_signal.wait()   # SIGTERM: leaving the block hands every lease off

The coordinator runs one `process(handle)` task per lease it holds; a task that returns without
being asked to stop or reaching SHARD_END is restarted from its last checkpoint after a backoff.

Guarantees (DESIGN.md invariants 3-5) and costs: README's Leases section.
"""

from checkpoints.coordinator import Coordinator
from checkpoints.discovery import ShardInfo, ShardLister
from checkpoints.errors import LeaseLost, LeaseTableMissing, LeaseTableUnavailable
from checkpoints.handle import LeaseHandle, StopReason
from checkpoints.model import Checkpoint, Lease, Position
from checkpoints.settings import LeaseSettings
from checkpoints.supervisor import ShardProcessor
from checkpoints.table import LeaseTable

__all__ = [
    "Checkpoint",
    "Coordinator",
    "Lease",
    "LeaseHandle",
    "LeaseLost",
    "LeaseSettings",
    "LeaseTable",
    "LeaseTableMissing",
    "LeaseTableUnavailable",
    "Position",
    "ShardInfo",
    "ShardLister",
    "ShardProcessor",
    "StopReason",
]
