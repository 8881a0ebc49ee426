"""What the stream holds: retention, creation time, capacity mode and its oldest record,
and the warning for a `--from` older than the trim horizon.

Kinesis keeps records for the stream's retention period (24 h to 365 days); an AT_TIMESTAMP
iterator for an older time simply starts at the trim horizon. A replay says so, with how much
of the requested history is gone, and goes on from the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consumer.aws.shards import kinesis_shards
from consumer.replay.window import HOUR_MS, human_span, iso_ms
from consumer.sources.lean import kinesis_records, lean_body

# GetRecords calls per shard spent looking for the oldest record (a TRIM_HORIZON iterator may
# return empty batches while it walks over expired data).
_OLDEST_PROBES = 5


@dataclass(frozen=True)
class StreamFacts:
    """DescribeStreamSummary, plus the arrival time of the oldest record (if looked up)."""

    name: str
    arn: str
    retention_hours: int
    created_ms: int
    on_demand: bool
    oldest_arrival_ms: int | None = None


async def describe_stream(client: Any, name: str | None, arn: str | None) -> StreamFacts:
    """DescribeStreamSummary of the stream named by `name` or `arn`."""
    ident = {"StreamARN": arn} if arn else {"StreamName": name}
    summary = (await client.describe_stream_summary(**ident))["StreamDescriptionSummary"]
    mode = summary.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED")
    created = summary.get("StreamCreationTimestamp")
    return StreamFacts(
        name=str(summary["StreamName"]),
        arn=str(summary["StreamARN"]),
        retention_hours=int(summary.get("RetentionPeriodHours", 24)),
        created_ms=round(created.timestamp() * 1000) if created is not None else 0,
        on_demand=mode == "ON_DEMAND",
    )


async def oldest_arrival_ms(client: Any, stream_arn: str) -> int | None:
    """The arrival time of the oldest record in the stream, None if none was found quickly.

    Reads the first record of every shard open at the trim horizon (a few GetRecords calls
    each, Limit 1)."""
    oldest: int | None = None
    at_trim_horizon = {"Type": "AT_TRIM_HORIZON"}
    for shard in await kinesis_shards(client, {"StreamARN": stream_arn}, at_trim_horizon):
        response = await client.get_shard_iterator(
            StreamARN=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )
        iterator = response.get("ShardIterator")
        for _ in range(_OLDEST_PROBES):
            if not iterator:
                break
            body = lean_body(await client.get_records(ShardIterator=iterator, Limit=1))
            records = kinesis_records(body.get("Records") or [])
            if records:
                arrival = records[0].arrival_ms
                oldest = arrival if oldest is None else min(oldest, arrival)
                break
            if not body.get("MillisBehindLatest"):
                break  # at the tip: the shard is empty
            iterator = body.get("NextShardIterator")
    return oldest


@dataclass(frozen=True)
class HorizonCheck:
    """Where the replay really starts (`start_ms`, for progress), and what to tell the user."""

    start_ms: int
    warning: str | None = None
    note: str | None = None


def check_horizon(from_ms: int | None, facts: StreamFacts, now_ms: int) -> HorizonCheck:
    """Compares `--from` with what the stream can still hold: before the trim horizon, a
    warning with the missing span; before the stream was created, a note."""
    horizon_ms = now_ms - facts.retention_hours * HOUR_MS
    first_ms = max(horizon_ms, facts.created_ms)
    if facts.oldest_arrival_ms is not None:
        first_ms = max(first_ms, facts.oldest_arrival_ms)
    if from_ms is None:
        return HorizonCheck(first_ms)
    if from_ms < horizon_ms:
        oldest = (
            f"; its oldest record arrived {iso_ms(facts.oldest_arrival_ms)}"
            if facts.oldest_arrival_ms is not None
            else ""
        )
        return HorizonCheck(
            first_ms,
            warning=(
                f"--from {iso_ms(from_ms)} is before the trim horizon of stream {facts.name} "
                f"(retention {facts.retention_hours} h, so records that arrived before "
                f"{iso_ms(horizon_ms)} are gone{oldest}): starting at the horizon; "
                f"{human_span(horizon_ms - from_ms)} of the requested history is missing "
                "(--source archive replays older history from the audit archive)"
            ),
        )
    if from_ms < facts.created_ms:
        return HorizonCheck(
            first_ms,
            note=(
                f"--from {iso_ms(from_ms)} is before stream {facts.name} was created "
                f"({iso_ms(facts.created_ms)}): starting at its first record"
            ),
        )
    return HorizonCheck(from_ms)
