"""The shards a replay reads: ListShards with a ShardFilter, closed shards included.

`FROM_TIMESTAMP` lists every shard that was open at `--from` or opened after it (closed
shards whose end is at or after the time, and all open shards), with their parents, which is
exactly a replay's lineage from `--from` on. (`AT_TIMESTAMP` would list only the shards open
at that instant and miss the children of a later split.) With no `--from`,
`FROM_TRIM_HORIZON` lists every shard within retention. A time before the trim horizon is
treated by Kinesis as the trim horizon.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from checkpoints.discovery import KinesisShardLister
from checkpoints.retry import RetryPolicy


def shard_filter(from_ms: int | None) -> dict[str, Any]:
    """The ListShards ShardFilter for a replay from `from_ms` (None: the trim horizon)."""
    if from_ms is None:
        return {"Type": "FROM_TRIM_HORIZON"}
    return {"Type": "FROM_TIMESTAMP", "Timestamp": datetime.fromtimestamp(from_ms / 1000, UTC)}


class FilteredShardLister(KinesisShardLister):
    """A `checkpoints.discovery.ShardLister` that lists only the replay's shards.

    The filter goes with the first page only: a NextToken carries the whole request (and a
    call with a NextToken must not name the stream). An expired token restarts the listing.
    Constructing one does no I/O.
    """

    def __init__(
        self,
        client: Any,
        stream_arn: str,
        from_ms: int | None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            client, stream_arn=stream_arn, retry=retry, shard_filter=shard_filter(from_ms)
        )
