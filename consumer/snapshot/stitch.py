"""The stitching check: the stream must cover every change after the snapshot (README, "Backfill":
why that makes the sinks converge, and what is checked before a snapshot starts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from checkpoints.model import Lease, Position, snapshot_from_items
from consumer.settings import Settings
from consumer.snapshot.segments import scan_all


class StitchError(RuntimeError):
    """The stream does not cover the snapshot; the message is one line for the user."""


@dataclass(frozen=True)
class StitchFacts:
    snapshot_us: int
    version_us: int
    now_us: int
    retention_hours: int | None
    initial_position: str
    tombstone_ttl_s: int | None  # replication's, when replication takes the snapshot


def stream_name(settings: Settings) -> str | None:
    """The Kinesis stream's name: `stream.name`, or the end of `stream.arn`."""
    stream = settings.stream
    return stream.name or (stream.arn.rsplit("/", 1)[-1] if stream.arn else None)


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_static(facts: StitchFacts) -> None:
    """Retention, tombstone lifetime and (no leases) the initial position."""
    if facts.retention_hours is not None:
        oldest_us = facts.now_us - facts.retention_hours * 3_600_000_000
        if facts.version_us < oldest_us:
            raise StitchError(
                f"the stream keeps {facts.retention_hours} h of changes, so it no longer "
                f"covers the snapshot time {_iso(facts.version_us)} (snapshot time minus the "
                "margin): use a newer export (leave out --export-arn) or --source scan"
            )
    ttl_s = facts.tombstone_ttl_s
    if ttl_s is not None and facts.now_us - facts.version_us > ttl_s * 1_000_000:
        raise StitchError(
            f"the snapshot time {_iso(facts.version_us)} is older than the replica's "
            f"tombstone lifetime ({ttl_s} s): a deleted item could come back; use a newer "
            "export or --source scan"
        )


def check_initial_position(facts: StitchFacts) -> None:
    position = facts.initial_position
    if position == "LATEST":
        raise StitchError(
            "the consumer has not started yet (no leases) and stream.initial_position is "
            "LATEST, so changes made before it starts would be missed: start `consumer run` "
            "first, or set stream.initial_position to TRIM_HORIZON"
        )
    if position.startswith("AT_TIMESTAMP="):
        start = datetime.fromisoformat(position.removeprefix("AT_TIMESTAMP="))
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        if start.timestamp() * 1_000_000 > facts.version_us:
            raise StitchError(
                f"stream.initial_position {position} is after the snapshot time "
                f"{_iso(facts.version_us)}: changes in between would be missed"
            )


async def _first_arrival_after(kinesis: Any, stream: str, lease: Lease) -> int | None:
    """Epoch microseconds of the first record after the lease's checkpoint; None if none."""
    checkpoint = lease.checkpoint
    args: dict[str, Any] = {"StreamName": stream, "ShardId": lease.shard_id}
    if checkpoint.position is Position.AFTER_SEQUENCE_NUMBER:
        args["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
        args["StartingSequenceNumber"] = checkpoint.sequence_number
    elif checkpoint.position is Position.AT_TIMESTAMP and checkpoint.timestamp_ms is not None:
        return checkpoint.timestamp_ms * 1000
    elif checkpoint.position is Position.TRIM_HORIZON:
        return 0
    else:
        return None
    iterator = (await kinesis.get_shard_iterator(**args))["ShardIterator"]
    for _ in range(5):  # a few empty answers are normal before data is found
        answer = await kinesis.get_records(ShardIterator=iterator, Limit=1)
        records = answer.get("Records", [])
        if records:
            arrived: datetime = records[0]["ApproximateArrivalTimestamp"]
            return int(arrived.timestamp() * 1_000_000)
        if not answer.get("MillisBehindLatest"):
            return None
        iterator = answer.get("NextShardIterator")
        if not iterator:
            return None
    return None


async def lease_table_leases(client: Any, lease_table: str) -> Sequence[Lease]:
    try:
        items = await scan_all(client, TableName=lease_table, ConsistentRead=True)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return ()
        raise
    return snapshot_from_items(items).leases


async def check_consumer_position(
    kinesis: Any, stream: str, leases: Sequence[Lease], facts: StitchFacts
) -> None:
    """Every open shard's next record arrived at or before the snapshot time (see above)."""
    open_leases = [lease for lease in leases if not lease.finished]
    if not leases:
        check_initial_position(facts)
        return
    for lease in open_leases:
        if lease.checkpoint.position is Position.LATEST:
            if lease.owner is None:
                raise StitchError(
                    f"shard {lease.shard_id} has no checkpoint yet (LATEST) and no owner: "
                    "start `consumer run` first so the stream is read from before the snapshot"
                )
            continue
        if facts.snapshot_us >= facts.now_us - 1_000_000:
            # A snapshot taken after this check (a scan, a new export): every record the
            # consumer has read arrived before it, and it reads every later one.
            continue
        arrival = await _first_arrival_after(kinesis, stream, lease)
        if arrival is None:
            raise StitchError(
                f"the consumer has read shard {lease.shard_id} past the snapshot time "
                f"{_iso(facts.snapshot_us)}: changes since were not necessarily delivered "
                "to a pipeline added since; start a new export (leave out --export-arn) "
                "or use --source scan"
            )
        if arrival > facts.snapshot_us:
            raise StitchError(
                f"the consumer has read shard {lease.shard_id} up to {_iso(arrival)}, past "
                f"the snapshot time {_iso(facts.snapshot_us)}: start a new export (leave out "
                "--export-arn) or use --source scan"
            )
