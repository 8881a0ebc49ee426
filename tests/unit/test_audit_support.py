"""Shared helpers for the audit sink's tests (no tests here): change events in the Kinesis
destination format, an in-memory object store with scripted failures, a manual clock."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from botocore.exceptions import ClientError

from consumer.records import ChangeEvent, RecordPosition, decode_destination_record

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
SHARD = "shardId-000000000001"
BASE_SEQUENCE = 49654063224564371338012546178361371012405536155209416706
# 2024-07-03T22:41:27.123Z, 18 minutes before an hour boundary.
T0_MS = 1720046487123
CREATED_US = 1720046486486729


def sequence(n: int) -> str:
    """The n-th record's sequence number (all the same length, as in a real shard)."""
    return str(BASE_SEQUENCE + n * 1000)


def change_record(
    n: int, *, table: str = "orders", event_name: str = "MODIFY", event_id: str | None = None
) -> dict[str, Any]:
    """A Kinesis destination record for item n (a MODIFY with both images)."""
    keys = {"pk": {"S": f"order-{n}"}}
    new_image = {**keys, "total": {"N": "12345678901234567890.123456789012345678"}, "v": {"N": "2"}}
    old_image = {**keys, "total": {"N": "1E-130"}, "v": {"N": "1"}}
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": CREATED_US + n,
        "ApproximateCreationDateTimePrecision": "MICROSECOND",
        "Keys": keys,
        "SizeBytes": 200,
    }
    if event_name != "INSERT":
        body["OldImage"] = old_image
    if event_name != "REMOVE":
        body["NewImage"] = new_image
    return {
        "awsRegion": "us-east-1",
        "dynamodb": body,
        "eventID": event_id or f"event-{n:06d}",
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "recordFormat": "application/json",
        "tableName": table,
        "userIdentity": None,
    }


def change_event(
    n: int,
    *,
    shard: str = SHARD,
    table: str = "orders",
    arrival_ms: int | None = None,
    sub_sequence: int = 0,
    event_id: str | None = None,
) -> ChangeEvent:
    """The n-th change of a shard, decoded from its destination record. It arrived n ms
    after T0 unless `arrival_ms` says otherwise."""
    data = orjson.dumps(change_record(n, table=table, event_id=event_id))
    arrival = T0_MS + n if arrival_ms is None else arrival_ms
    position = RecordPosition(STREAM, shard, sequence(n), sub_sequence, arrival)
    return decode_destination_record(data, position)


def change_events(numbers: Iterable[int], **kwargs: Any) -> list[ChangeEvent]:
    return [change_event(n, **kwargs) for n in numbers]


def ndjson(body: bytes) -> list[dict[str, Any]]:
    """The lines of a gzip NDJSON object, parsed."""
    text = gzip.decompress(body)
    assert text.endswith(b"\n")
    return [orjson.loads(line) for line in text.split(b"\n")[:-1]]


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@dataclass
class MemoryStore:
    """An S3 bucket in memory. `failures` are raised by the next puts, in order; while
    `gate` is set, puts wait for it to open. `called` is set by the first put."""

    objects: dict[str, bytes] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)
    gate: asyncio.Event | None = None
    called: asyncio.Event = field(default_factory=asyncio.Event)

    async def put_object(self, **kwargs: Any) -> Any:
        self.requests.append(kwargs)
        self.called.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        self.objects[kwargs["Key"]] = kwargs["Body"]
        return {"ETag": '"etag"'}

    def lines(self) -> list[dict[str, Any]]:
        """Every line of every object, in key order."""
        return [line for key in sorted(self.objects) for line in ndjson(self.objects[key])]


@dataclass
class ManualClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now
