"""Where an audit object goes: Hive-style partitions and deterministic keys.

    {prefix}table={table}/dt=YYYY-MM-DD/hour=HH/{shard_id}/{sequence_number}-{sub_sequence}.ndjson.gz

- The partition is the UTC hour of the record's arrival time (ApproximateArrivalTimestamp;
  the change time for sources without one: DynamoDB Streams, Lambda). Arrival times follow
  shard order while change times jump with late and duplicate deliveries, so a late duplicate
  never drags a fresh object into an old partition; `replay --from` selects by it too.
- An object never spans partitions: a new object starts when the hour changes.
- The file name is the position of the object's FIRST record. The checkpoint moves only after
  a flush, so after a crash the next object starts at the very record the lost attempt
  started at, and overwrites it instead of adding a duplicate (the records re-read are
  contiguous from there: what the new object lacks, the next ones carry).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from consumer.records import ChangeEvent, RecordPosition

HOUR_US = 3_600_000_000
SUFFIX = ".ndjson.gz"
NO_SHARD = "no-shard"  # Lambda events carry no shard id (the DLQ spells it the same way)


def partition_hour(event: ChangeEvent) -> int:
    """The hour (since the epoch, UTC) whose partition holds the event: its arrival time, or
    its change time when it has none."""
    arrival_ms = event.position.arrival_ms
    us = event.created_at_us if arrival_ms is None else arrival_ms * 1000
    return us // HOUR_US


@dataclass(frozen=True)
class Partition:
    """One `dt=YYYY-MM-DD/hour=HH` partition, from an hour since the epoch."""

    hour: int

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.hour * 3600, UTC)

    @property
    def dt(self) -> str:
        return self.start.strftime("%Y-%m-%d")

    @property
    def hour_of_day(self) -> str:
        return self.start.strftime("%H")

    @property
    def path(self) -> str:
        return f"dt={self.dt}/hour={self.hour_of_day}"


@dataclass(frozen=True)
class ObjectLayout:
    """Builds object keys under `prefix` ("" or ending in "/")."""

    prefix: str = "audit/"

    def table_prefix(self, table: str) -> str:
        """Where one table's objects are: `{prefix}table={table}/` (the Athena LOCATION)."""
        return f"{self.prefix}table={_path_segment(table)}/"

    def object_key(self, table: str, hour: int, first: RecordPosition, first_event_id: str) -> str:
        """The key of the object whose first record is at `first` (in partition `hour`).

        A position without a decimal sequence number (none is known) is named by the event id
        instead, so keys stay unique and deterministic.
        """
        shard = _path_segment(first.shard_id) or NO_SHARD
        sequence = first.sequence_number
        if not (sequence.isascii() and sequence.isdigit()):
            sequence = f"event-{_path_segment(first_event_id)}"
        return (
            f"{self.table_prefix(table)}{Partition(hour).path}/{shard}/"
            f"{sequence}-{first.sub_sequence_number}{SUFFIX}"
        )


def _path_segment(value: str) -> str:
    # Table names and shard ids never need escaping ([A-Za-z0-9_.-]); escape anything else so
    # a value can neither add a path level nor fake a partition ("/", "=").
    return quote(value, safe="")
