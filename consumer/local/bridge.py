"""LOCAL ONLY: a stand-in for DynamoDB's Kinesis Data Streams destination, which no emulator
implements: it tails the source table's DynamoDB Stream (moto) and writes each change into the
Kinesis stream (kinesis-mock) in the destination's exact record format.

Like AWS, it may deliver a change twice and out of order (at the rates its options give; it
counts what it injected), and in MILLISECOND precision (the destination's default) lets
consecutive changes share one millisecond, as a busy item on AWS does.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

TTL_PRINCIPAL = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
PUT_RECORDS_LIMIT = 500


@dataclass
class BridgeStats:
    changes: int = 0
    written: int = 0
    duplicates: int = 0
    reorderings: int = 0
    reorder_candidates: int = 0


@dataclass
class BridgeOptions:
    """How faithfully (or unfaithfully, like AWS may be) the bridge delivers changes."""

    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    seed: int | None = None
    # A REMOVE whose old image has this attribute with an epoch-seconds value at or before the
    # change time is labelled a TTL delete (the DynamoDB service principal in userIdentity).
    ttl_attribute: str | None = None
    precision: str = "MICROSECOND"
    # MILLISECOND only: how many consecutive changes share one millisecond (ties).
    changes_per_millisecond: int = 4

    def __post_init__(self) -> None:
        for name in ("duplicate_rate", "reorder_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        if self.precision not in ("MICROSECOND", "MILLISECOND"):
            raise ValueError(f"precision must be MICROSECOND or MILLISECOND, got {self.precision}")
        if not 1 <= self.changes_per_millisecond <= 1000:
            raise ValueError(
                f"changes_per_millisecond must be 1..1000, got {self.changes_per_millisecond}"
            )


def _wire_value(value: Any) -> Any:
    """boto3 hands binaries back as bytes; the destination's JSON carries them as base64."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: _wire_value(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_wire_value(inner) for inner in value]
    return value


def _epoch_us(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1_000_000)
    return int(Decimal(str(value)) * 1_000_000)


def opaque_partition_key(keys: Mapping[str, Any]) -> str:
    """One item's changes share a shard, as with the real destination; the key is opaque."""
    return hashlib.md5(orjson.dumps(keys, option=orjson.OPT_SORT_KEYS)).hexdigest().upper()


@dataclass
class DestinationBridge:
    """Copies a table's DynamoDB Stream into a Kinesis stream in the destination's format.

    Construct with boto3 clients; nothing happens until `pump()` or `run()`.
    """

    streams_client: Any
    kinesis_client: Any
    table_name: str
    kinesis_stream: str
    region: str
    options: BridgeOptions = field(default_factory=BridgeOptions)
    stats: BridgeStats = field(default_factory=BridgeStats)

    def __post_init__(self) -> None:
        self._random = random.Random(self.options.seed)
        self._cursors: dict[str, str | None] = {}  # shard -> its next iterator (None: closed)
        self._stream_arn: str | None = None
        self._last_us = 0
        self._in_tick = 0  # changes given the current millisecond (MILLISECOND mode)
        self._lock = threading.Lock()

    # --- reading the DynamoDB Stream --------------------------------------------------

    def _discover_shards(self) -> None:
        if self._stream_arn is None:
            streams = self.streams_client.list_streams(TableName=self.table_name)["Streams"]
            if not streams:
                raise RuntimeError(f"table {self.table_name} has no DynamoDB stream enabled")
            self._stream_arn = streams[0]["StreamArn"]
        description = self.streams_client.describe_stream(StreamArn=self._stream_arn)
        for shard in description["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id not in self._cursors:
                self._cursors[shard_id] = self.streams_client.get_shard_iterator(
                    StreamArn=self._stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]

    def _read_changes(self) -> list[dict[str, Any]]:
        changes: list[dict[str, Any]] = []
        for shard_id, iterator in self._cursors.items():
            while iterator:
                response = self.streams_client.get_records(ShardIterator=iterator, Limit=1000)
                self._cursors[shard_id] = iterator = response.get("NextShardIterator")
                records = response.get("Records", [])
                changes.extend(records)
                if not records:
                    break
        return changes

    # --- writing the destination format ---------------------------------------------

    def _next_time_us(self, source_us: int) -> int:
        # Keep true order by making times unique and increasing, as MICROSECOND precision on
        # AWS effectively does.
        if self.options.precision != "MILLISECOND":
            self._last_us = max(source_us, self._last_us + 1)
            return self._last_us
        # MILLISECOND: every `changes_per_millisecond` consecutive changes share the
        # millisecond of the first of them (local writes are slower than AWS's busy items);
        # the next group starts at its own time, at least a millisecond later.
        if self._in_tick >= self.options.changes_per_millisecond or not self._last_us:
            tick = max(source_us // 1000 * 1000, self._last_us // 1000 * 1000 + 1000)
            self._last_us, self._in_tick = tick, 0
        else:
            self._last_us += 1
        self._in_tick += 1
        return self._last_us

    def destination_record(self, change: Mapping[str, Any]) -> dict[str, Any]:
        body = change["dynamodb"]
        created_us = self._next_time_us(_epoch_us(body["ApproximateCreationDateTime"]))
        micro = self.options.precision == "MICROSECOND"
        created = created_us if micro else created_us // 1000
        dynamodb: dict[str, Any] = {
            "ApproximateCreationDateTime": created,
            "ApproximateCreationDateTimePrecision": self.options.precision,
            "Keys": _wire_value(body["Keys"]),
        }
        for image in ("NewImage", "OldImage"):
            if image in body:
                dynamodb[image] = _wire_value(body[image])
        dynamodb["SizeBytes"] = int(body.get("SizeBytes", 0))
        user_identity = change.get("userIdentity")
        if user_identity is None and self._is_ttl_delete(change, created_us):
            user_identity = dict(TTL_PRINCIPAL)
        return {
            "awsRegion": self.region,
            "eventID": str(uuid.uuid4()),
            "eventName": change["eventName"],
            "userIdentity": user_identity,
            "recordFormat": "application/json",
            "tableName": self.table_name,
            "dynamodb": dynamodb,
            "eventSource": "aws:dynamodb",
        }

    def _is_ttl_delete(self, change: Mapping[str, Any], created_us: int) -> bool:
        attribute = self.options.ttl_attribute
        if attribute is None or change["eventName"] != "REMOVE":
            return False
        value = change["dynamodb"].get("OldImage", {}).get(attribute, {}).get("N")
        if value is None:
            return False
        return int(Decimal(value) * 1_000_000) <= created_us

    def _with_faults(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Inject reorderings and duplicates among the changes of each item.

        Only changes to the same item (same partition key, so the same shard) are reordered:
        that is the disorder that matters to sinks. A reordering swaps two consecutive changes
        of one item; a duplicate is re-sent up to two of that item's later changes afterwards,
        so a stale copy can arrive after newer state.
        """
        positions = [float(index) for index in range(len(entries))]
        by_item: dict[str, list[int]] = {}
        for index, entry in enumerate(entries):
            by_item.setdefault(entry["PartitionKey"], []).append(index)
        for indexes in by_item.values():
            pair = 0
            while pair < len(indexes) - 1:
                self.stats.reorder_candidates += 1
                if self._random.random() < self.options.reorder_rate:
                    first, second = indexes[pair], indexes[pair + 1]
                    positions[first], positions[second] = positions[second], positions[first]
                    self.stats.reorderings += 1
                    pair += 2
                else:
                    pair += 1
        placed = list(zip(positions, entries, strict=True))
        for indexes in by_item.values():
            for rank, index in enumerate(indexes):
                if self._random.random() < self.options.duplicate_rate:
                    later = indexes[min(rank + self._random.randint(0, 2), len(indexes) - 1)]
                    placed.append((positions[later] + 0.5, entries[index]))
                    self.stats.duplicates += 1
        placed.sort(key=lambda position_entry: position_entry[0])
        return [entry for _, entry in placed]

    def _put(self, entries: list[dict[str, Any]]) -> None:
        for start in range(0, len(entries), PUT_RECORDS_LIMIT):
            pending = entries[start : start + PUT_RECORDS_LIMIT]
            delay = 0.05
            while pending:
                response = self.kinesis_client.put_records(
                    StreamName=self.kinesis_stream, Records=pending
                )
                if not response.get("FailedRecordCount"):
                    self.stats.written += len(pending)
                    break
                failed = [
                    entry
                    for entry, result in zip(pending, response["Records"], strict=True)
                    if "ErrorCode" in result
                ]
                self.stats.written += len(pending) - len(failed)
                pending = failed
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def pump(self) -> int:
        """Moves everything the source stream has now; returns the number of changes moved."""
        with self._lock:
            self._discover_shards()
            changes = self._read_changes()
            entries = []
            for change in changes:
                record = self.destination_record(change)
                key = opaque_partition_key(record["dynamodb"]["Keys"])
                entries.append({"Data": orjson.dumps(record), "PartitionKey": key})
            self.stats.changes += len(changes)
            self._put(self._with_faults(entries))
            return len(changes)

    def run(self, stop: threading.Event, interval_s: float = 0.2) -> None:
        """Pumps until `stop` is set, then drains what is left."""
        while not stop.is_set():
            moved = self.pump()
            if not moved:
                stop.wait(interval_s)
        while self.pump():
            pass
