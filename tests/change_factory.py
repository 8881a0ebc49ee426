"""Building change events in the Kinesis destination format, for pipeline tests."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import orjson

from consumer.records import ChangeEvent, RecordPosition, decode_destination_record

_sequence = itertools.count(1)


def destination_record(
    event_name: str,
    key: str,
    created_us: int,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    table: str = "orders",
    ttl: bool = False,
    precision: str = "MICROSECOND",
) -> dict[str, Any]:
    """`created_us` is written as is: epoch milliseconds when `precision` is MILLISECOND."""
    keys = {"pk": {"S": key}}
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": created_us,
        "ApproximateCreationDateTimePrecision": precision,
        "Keys": keys,
        "SizeBytes": 100,
    }
    if new is not None:
        body["NewImage"] = {**keys, **new}
    if old is not None:
        body["OldImage"] = {**keys, **old}
    return {
        "awsRegion": "us-east-1",
        "eventID": str(uuid.uuid4()),
        "eventName": event_name,
        "userIdentity": (
            {"type": "Service", "principalId": "dynamodb.amazonaws.com"} if ttl else None
        ),
        "recordFormat": "application/json",
        "tableName": table,
        "dynamodb": body,
        "eventSource": "aws:dynamodb",
    }


def change(
    event_name: str,
    key: str,
    created_us: int,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    shard_id: str = "shardId-000000000000",
    sequence: int | None = None,
    arrival_ms: int | None = None,
    precision: str = "MICROSECOND",
) -> ChangeEvent:
    record = destination_record(event_name, key, created_us, new, old, precision=precision)
    position = RecordPosition(
        "stream",
        shard_id,
        str(sequence if sequence is not None else next(_sequence)),
        0,
        arrival_ms,
    )
    return decode_destination_record(orjson.dumps(record), position, strict=True)


def upsert(key: str, created_us: int, value: int, **kwargs: Any) -> ChangeEvent:
    return change(
        "MODIFY",
        key,
        created_us,
        new={"value": {"N": str(value)}},
        old={"value": {"N": str(value - 1)}},
        **kwargs,
    )


def insert(key: str, created_us: int, value: int, **kwargs: Any) -> ChangeEvent:
    return change("INSERT", key, created_us, new={"value": {"N": str(value)}}, **kwargs)


def remove(key: str, created_us: int, **kwargs: Any) -> ChangeEvent:
    return change("REMOVE", key, created_us, old={"value": {"N": "0"}}, **kwargs)
