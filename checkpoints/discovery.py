"""Shard discovery: which shards exist, and which leases to create or clean up.

`ShardLister` is the one call the coordinator needs from Kinesis (ListShards, every page);
the planning functions here are pure so unit tests can drive them with plain lists.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError

from checkpoints.model import Checkpoint, Lease, Position
from checkpoints.retry import RetryPolicy, RetryStats, call_with_retry, error_code
from consumer.aws import AwsEndpoints


@dataclass(frozen=True)
class ShardInfo:
    shard_id: str
    parent_shard_ids: frozenset[str] = frozenset()
    closed: bool = False  # has an ending sequence number: no new records will arrive


class ShardLister(Protocol):
    """Lists every shard of the stream that is within retention, open and closed, with its
    parents. Raises on failure (the caller retries on its next round)."""

    async def list_shards(self) -> list[ShardInfo]: ...


def shard_from_api(shard: Mapping[str, Any]) -> ShardInfo:
    parents = {shard.get("ParentShardId"), shard.get("AdjacentParentShardId")}
    return ShardInfo(
        shard_id=str(shard["ShardId"]),
        parent_shard_ids=frozenset(p for p in parents if p),
        closed="EndingSequenceNumber" in shard.get("SequenceNumberRange", {}),
    )


class KinesisShardLister:
    """ListShards over an aiobotocore Kinesis client, following NextToken. (A call with
    NextToken must not name the stream; an expired token restarts the listing.)"""

    def __init__(
        self,
        client: Any,
        stream_name: str | None = None,
        stream_arn: str | None = None,
        retry: RetryPolicy | None = None,
        shard_filter: Mapping[str, Any] | None = None,
    ) -> None:
        """`shard_filter` (ListShards' ShardFilter) goes with the first page only: a NextToken
        carries the whole request."""
        if not stream_name and not stream_arn:
            raise ValueError("a stream name or ARN is needed to list shards")
        self._client = client
        self._stream: dict[str, Any] = (
            {"StreamARN": stream_arn} if stream_arn else {"StreamName": stream_name}
        )
        if shard_filter is not None:
            self._stream["ShardFilter"] = dict(shard_filter)
        self._retry = retry or RetryPolicy()
        self.stats = RetryStats()
        self.calls = 0

    @classmethod
    @asynccontextmanager
    async def open(
        cls, endpoints: AwsEndpoints, stream_name: str | None = None, stream_arn: str | None = None
    ) -> AsyncIterator[KinesisShardLister]:
        async with endpoints.aio_client("kinesis") as client:
            yield cls(client, stream_name, stream_arn)

    async def list_shards(self) -> list[ShardInfo]:
        for _ in range(3):
            shards: list[ShardInfo] = []
            params: dict[str, Any] = {**self._stream, "MaxResults": 1000}
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


def plan_new_leases(
    shards: Sequence[ShardInfo],
    leases: Sequence[Lease],
    initial_position: Checkpoint,
) -> list[Lease]:
    """Leases to create, parents before children (each creation is a conditional put, so
    workers racing here are harmless, and a crash midway leaves a prefix that the next round
    completes).

    - A child of a shard whose lease already existed (a split or merge seen while running)
      starts at TRIM_HORIZON: nothing after its parents is skipped.
    - A child of a shard created in this same round inherits that parent's start (on a first
      start AT_TIMESTAMP must not re-read a child's records from before the timestamp).
    - Any other shard starts at the initial position, except that with LATEST a closed shard
      is history from before this application started and gets no lease.
    """
    existing = {lease.key for lease in leases}
    created: dict[str, Lease] = {}
    for shard in _parents_first(shards):
        if shard.shard_id in existing or shard.shard_id in created:
            continue
        old_parents = [p for p in shard.parent_shard_ids if p in existing]
        new_parents = [created[p] for p in sorted(shard.parent_shard_ids) if p in created]
        if old_parents:
            start = Checkpoint.trim_horizon()
        elif new_parents:
            starts = [parent.checkpoint for parent in new_parents]
            trim = Checkpoint.trim_horizon()
            start = trim if trim in starts else starts[0]
        elif initial_position.position is Position.LATEST and shard.closed:
            continue
        else:
            start = initial_position
        created[shard.shard_id] = Lease(
            key=shard.shard_id,
            shard_id=shard.shard_id,
            checkpoint=start,
            parent_shard_ids=shard.parent_shard_ids,
        )
    return list(created.values())


def _parents_first(shards: Sequence[ShardInfo]) -> list[ShardInfo]:
    by_id = {shard.shard_id: shard for shard in shards}
    ordered: list[ShardInfo] = []
    done: set[str] = set()

    def visit(shard: ShardInfo, depth: int) -> None:
        if shard.shard_id in done or depth > len(by_id):
            return
        for parent in sorted(shard.parent_shard_ids):
            if parent in by_id:
                visit(by_id[parent], depth + 1)
        done.add(shard.shard_id)
        ordered.append(shard)

    for shard in sorted(shards, key=lambda s: s.shard_id):
        visit(shard, 0)
    return ordered


def children_to_record(shards: Sequence[ShardInfo], leases: Sequence[Lease]) -> dict[str, set[str]]:
    """Parent lease key -> child shard ids listed by Kinesis but missing from its
    `childShardIds` attribute."""
    by_key = {lease.key: lease for lease in leases}
    missing: dict[str, set[str]] = {}
    for shard in shards:
        for parent in shard.parent_shard_ids:
            lease = by_key.get(parent)
            if lease is not None and shard.shard_id not in lease.child_shard_ids:
                missing.setdefault(parent, set()).add(shard.shard_id)
    return missing


def plan_cleanup(shards: Sequence[ShardInfo], leases: Sequence[Lease]) -> list[str]:
    """Keys of leases to delete: at SHARD_END, no longer listed (past retention), and every
    known child has a lease (so the child's "parent without lease = done" rule is true)."""
    listed = {shard.shard_id for shard in shards}
    keys = {lease.key for lease in leases}
    doomed: list[str] = []
    for lease in leases:
        if not lease.finished or lease.shard_id in listed:
            continue
        children = set(lease.child_shard_ids) | {
            other.key for other in leases if lease.key in other.parent_shard_ids
        }
        if all(child in keys for child in children):
            doomed.append(lease.key)
    return sorted(doomed)
