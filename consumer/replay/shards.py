"""The shards a replay reads: ListShards with a ShardFilter, closed shards included.

`FROM_TIMESTAMP` lists every shard that was open at `--from` or opened after it (closed
shards whose end is at or after the time, and all open shards), with their parents, which is
exactly a replay's lineage from `--from` on. (`AT_TIMESTAMP` would list only the shards open
at that instant and miss the children of a later split.) With no `--from`,
`FROM_TRIM_HORIZON` lists every shard within retention. A time before the trim horizon is
treated by Kinesis as the trim horizon.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from checkpoints.discovery import ShardInfo, shard_from_api
from checkpoints.retry import RetryPolicy, RetryStats, call_with_retry, error_code


def shard_filter(from_ms: int | None) -> dict[str, Any]:
    """The ListShards ShardFilter for a replay from `from_ms` (None: the trim horizon)."""
    if from_ms is None:
        return {"Type": "FROM_TRIM_HORIZON"}
    return {"Type": "FROM_TIMESTAMP", "Timestamp": datetime.fromtimestamp(from_ms / 1000, UTC)}


class FilteredShardLister:
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
        self._client = client
        self._stream_arn = stream_arn
        self._filter = shard_filter(from_ms)
        self._retry = retry or RetryPolicy()
        self.stats = RetryStats()
        self.calls = 0

    async def list_shards(self) -> list[ShardInfo]:
        for _ in range(3):
            shards: list[ShardInfo] = []
            params: dict[str, Any] = {
                "StreamARN": self._stream_arn,
                "ShardFilter": self._filter,
                "MaxResults": 1000,
            }
            try:
                while True:
                    page = await call_with_retry(
                        functools.partial(self._client.list_shards, **params),
                        self._retry,
                        self.stats,
                    )
                    self.calls += 1
                    shards.extend(shard_from_api(shard) for shard in page.get("Shards", []))
                    token = page.get("NextToken")
                    if not token:
                        return shards
                    params = {"NextToken": token, "MaxResults": 1000}
            except ClientError as error:
                if error_code(error) != "ExpiredNextTokenException":
                    raise
                await asyncio.sleep(0.1)
        raise RuntimeError("ListShards: the listing kept expiring")
