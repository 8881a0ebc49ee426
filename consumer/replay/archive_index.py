"""Finding a replay's objects in the audit archive.

The archive's layout (see `consumer.pipeline.audit.layout`):

    {prefix}table={table}/dt=YYYY-MM-DD/hour=HH/{shard_id}/{first_seq}-{first_sub}.ndjson.gz

Partitions are the UTC hour of each record's *arrival*; an object never spans two. A replay
from `--from` lists the partitions from the hour before `--from`'s hour (a cheap margin for
records near the boundary; lines are filtered by their own arrival time anyway) to the hour of
the cut-off (`--to + grace`). Listing goes day by day (one ListObjectsV2 listing per day, not
per hour), so a replay over a year costs a few hundred listings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from consumer.pipeline.audit.layout import SUFFIX, ObjectLayout
from consumer.replay.errors import ReplayError, ReplayInputError
from consumer.replay.window import ReplayWindow

HOUR_MS = 3_600_000
# Sorts objects named by an event id (no decimal sequence number) after the others.
_NO_SEQUENCE = (1 << 200, 0)


@dataclass(frozen=True)
class ArchiveLocation:
    """Where the archive is: bucket, prefix ("" or ending in "/"), and the source table."""

    bucket: str
    prefix: str
    table: str

    @property
    def table_prefix(self) -> str:
        return ObjectLayout(self.prefix).table_prefix(self.table)


@dataclass(frozen=True, order=True)
class ArchiveObject:
    """One audit object. Orders by partition hour, shard, then first record's position."""

    hour: int
    shard_id: str
    first: tuple[int, int]
    key: str
    size: int = 0


def hour_range(window: ReplayWindow) -> tuple[int | None, int]:
    """The partition hours (since the epoch) to read: from the hour before `--from`'s (None:
    from the start of the archive) to the hour of the cut-off."""
    first = None if window.from_ms is None else window.from_ms // HOUR_MS - 1
    return first, window.cutoff_ms // HOUR_MS


def parse_object_key(key: str, table_prefix: str, size: int = 0) -> ArchiveObject | None:
    """The object of `key`, or None for a key that is not an audit object of this table."""
    if not key.startswith(table_prefix) or not key.endswith(SUFFIX):
        return None
    parts = key[len(table_prefix) :].split("/")
    if len(parts) != 4 or not parts[0].startswith("dt=") or not parts[1].startswith("hour="):
        return None
    try:
        day = datetime.strptime(parts[0][3:], "%Y-%m-%d").replace(tzinfo=UTC)
        hour_of_day = int(parts[1][5:])
    except ValueError:
        return None
    if not 0 <= hour_of_day <= 23:
        return None
    hour = int(day.timestamp()) // 3600 + hour_of_day
    name = parts[3][: -len(SUFFIX)]
    sequence, _, sub = name.rpartition("-")
    first = (int(sequence), int(sub)) if sequence.isdigit() and sub.isdigit() else _NO_SEQUENCE
    return ArchiveObject(hour, unquote(parts[2]), first, key, size)


def day_text(hour: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=hour)).strftime("%Y-%m-%d")


def select_days(days: Iterable[str], first_hour: int | None, last_hour: int) -> list[str]:
    """The `YYYY-MM-DD` partitions that can hold the hours [first_hour, last_hour]."""
    low = day_text(first_hour) if first_hour is not None else ""
    high = day_text(last_hour)
    return sorted(day for day in days if low <= day <= high)


async def _common_prefixes(s3: Any, bucket: str, prefix: str) -> list[str]:
    found: list[str] = []
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
    while True:
        page = await s3.list_objects_v2(**params)
        found.extend(entry["Prefix"] for entry in page.get("CommonPrefixes", []))
        token = page.get("NextContinuationToken")
        if not token:
            return found
        params["ContinuationToken"] = token


async def find_table(s3: Any, bucket: str, prefix: str, table: str | None) -> ArchiveLocation:
    """The archive location for `table`, or for the only table in the archive."""
    if table:
        return ArchiveLocation(bucket, prefix, table)
    tables = [
        unquote(entry[len(prefix) :].removeprefix("table=").rstrip("/"))
        for entry in await _common_prefixes(s3, bucket, prefix)
        if entry[len(prefix) :].startswith("table=")
    ]
    if not tables:
        raise ReplayError(f"no audit archive under s3://{bucket}/{prefix}")
    if len(tables) > 1:
        raise ReplayInputError(
            f"the archive s3://{bucket}/{prefix} holds several tables ({', '.join(tables)}): "
            "choose one with --table"
        )
    return ArchiveLocation(bucket, prefix, tables[0])


async def list_objects(
    s3: Any, location: ArchiveLocation, window: ReplayWindow
) -> list[ArchiveObject]:
    """Every object of the window's partitions, sorted (hour, shard, first position)."""
    first_hour, last_hour = hour_range(window)
    table_prefix = location.table_prefix
    day_prefixes = await _common_prefixes(s3, location.bucket, table_prefix)
    days = [entry[len(table_prefix) :].removeprefix("dt=").rstrip("/") for entry in day_prefixes]
    objects: list[ArchiveObject] = []
    for day in select_days(days, first_hour, last_hour):
        params: dict[str, Any] = {"Bucket": location.bucket, "Prefix": f"{table_prefix}dt={day}/"}
        while True:
            page = await s3.list_objects_v2(**params)
            for entry in page.get("Contents", []):
                parsed = parse_object_key(entry["Key"], table_prefix, int(entry.get("Size", 0)))
                if parsed is None:
                    continue
                if (first_hour is None or parsed.hour >= first_hour) and parsed.hour <= last_hour:
                    objects.append(parsed)
            token = page.get("NextContinuationToken")
            if not token:
                break
            params["ContinuationToken"] = token
    return sorted(objects)
