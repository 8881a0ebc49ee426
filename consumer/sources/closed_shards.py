"""Shard end for enhanced fan-out from the shard list, for a subscription that never ends with
ChildShards (kinesis-mock; one cut just before it): README, "EFO shard end, resharding and
re-registration". A shard ends when ListShards (every page, cached a few seconds) lists it
closed and one GetRecords after the reader's position finds nothing left (SHARD_END)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import structlog

from checkpoints.discovery import ShardInfo
from consumer.aws.shards import KinesisShardLister
from consumer.sources.lean import child_shard_ids, lean_body
from consumer.sources.model import StartPosition

log = structlog.get_logger(__name__)

LISTING_TTL_S = 5.0
CHECK_INTERVAL_S = 5.0


@dataclass(frozen=True, slots=True)
class ShardState:
    """What the shard list and one GetRecords say about a shard: `closed` (an
    EndingSequenceNumber is listed) and, when nothing is left after the reader's position,
    its `children` (SHARD_END)."""

    closed: bool
    children: tuple[str, ...] | None = None


class ClosedShardCheck:
    """Whether a shard is closed and read to its end, from ListShards and one GetRecords.

    `client` is the reader's aiobotocore Kinesis client (lean GetRecords installed or not).
    Constructing it does no I/O.
    """

    def __init__(
        self,
        client: Any,
        stream_arn: str,
        interval_s: float = CHECK_INTERVAL_S,
        listing_ttl_s: float = LISTING_TTL_S,
    ) -> None:
        self._client = client
        self._stream_arn = stream_arn
        self._lister = KinesisShardLister(client, stream_arn=stream_arn)
        self.interval_s = interval_s
        self._listing_ttl_s = listing_ttl_s
        self._listing: list[ShardInfo] = []
        self._listed_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _shards(self) -> list[ShardInfo]:
        async with self._lock:
            if time.monotonic() - self._listed_at >= self._listing_ttl_s:
                self._listing = await self._lister.list_shards()
                self._listed_at = time.monotonic()
            return self._listing

    async def state(self, shard_id: str, position: StartPosition) -> ShardState:
        """Whether the shard is closed, and if so whether anything is left after `position`
        (an unlisted shard counts as open: the reader's own errors handle a deleted one)."""
        shards = await self._shards()
        shard = next((s for s in shards if s.shard_id == shard_id), None)
        if shard is None or not shard.closed:
            return ShardState(closed=False)
        iterator = await self._client.get_shard_iterator(
            StreamARN=self._stream_arn, ShardId=shard_id, **position.iterator_args()
        )
        page = lean_body(
            await self._client.get_records(
                StreamARN=self._stream_arn, ShardIterator=iterator["ShardIterator"], Limit=1
            )
        )
        if page.get("Records") or page.get("NextShardIterator"):
            return ShardState(closed=True)
        children = child_shard_ids(page) or tuple(
            sorted(s.shard_id for s in shards if shard_id in s.parent_shard_ids)
        )
        return ShardState(closed=True, children=children)
