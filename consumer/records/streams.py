"""Decoders for DynamoDB Streams records ("Streams mode"): GetRecords and Lambda events.

Both carry the Kinesis destination's `dynamodb` body plus `SequenceNumber`, the creation time
in seconds. Through boto3, binary values are bytes and the time a datetime, and the reader
passes the stream ARN (the wire JSON, bytes, is accepted too); a Lambda event has base64 text,
a number and `eventSourceARN`, and no shard id. The table name comes from the stream ARN, and
`raw` is the record's wire JSON (bytes as base64, datetimes as epoch seconds).
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from consumer.records.duplicates import parse_record
from consumer.records.envelope import (
    body_object,
    check_source,
    event_name,
    is_ttl_delete,
    item_image,
    keys_image,
    record_object,
    size_bytes,
    text,
)
from consumer.records.errors import DecodeError, InvalidRecord
from consumer.records.event import ChangeEvent, new_event
from consumer.records.kinesis import DecodeResult
from consumer.records.position import RecordPosition
from consumer.records.timestamps import streams_created_at_us, us_from_datetime


def decode_streams_record(
    record: Mapping[str, Any] | bytes,
    stream_arn: str,
    shard_id: str = "",
    *,
    table: str | None = None,
    strict: bool = False,
) -> ChangeEvent:
    """One change from a DynamoDB Streams GetRecords record (boto3 dict, or its JSON bytes).

    `table` overrides the table name taken from `stream_arn`. Raises DecodeError if the
    record is not a DynamoDB change; `strict` also checks every image now.
    """
    raw = b""
    position = RecordPosition(stream_arn, shard_id, "")
    try:
        if isinstance(record, bytes | bytearray | memoryview):
            raw = bytes(record)
            parsed: object = parse_record(raw)  # a repeated key is an error
        elif isinstance(record, Mapping):
            parsed = dict(record)
            raw = wire_json(record)
        else:
            parsed = record
        record_dict = record_object(parsed)
        body = body_object(record_dict)
        sequence = body.get("SequenceNumber")
        if type(sequence) is not str:
            raise InvalidRecord("dynamodb.SequenceNumber is missing or not a string")
        position = RecordPosition(stream_arn, shard_id, sequence)
        event = _event(record_dict, body, position, raw, table)
    except InvalidRecord as error:
        raise DecodeError(position, error.reason, raw) from None
    if strict:
        event.validate()
    return event


def decode_lambda_record(record: Mapping[str, Any], *, strict: bool = False) -> ChangeEvent:
    """One change from the `Records` of a Lambda DynamoDB Streams event."""
    arn = record.get("eventSourceARN") if isinstance(record, Mapping) else None
    if type(arn) is not str:
        raise DecodeError(RecordPosition("", "", _sequence_of(record)), "eventSourceARN is missing")
    return decode_streams_record(record, arn, strict=strict)


def decode_lambda_event(event: Mapping[str, Any], *, strict: bool = False) -> list[DecodeResult]:
    """Every change in a Lambda DynamoDB Streams event, in order; a DecodeError stands in for
    each bad record (its position's sequence number is the batch item identifier to report)."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if type(records) is not list:
        return [DecodeError(RecordPosition("", "", ""), "the event has no Records list")]
    results: list[DecodeResult] = []
    for record in records:
        try:
            results.append(decode_lambda_record(record, strict=strict))
        except DecodeError as error:
            results.append(error)
    return results


def table_from_stream_arn(stream_arn: str) -> str:
    """The table name in a DynamoDB stream ARN; InvalidRecord if it is not one."""
    parts = stream_arn.split(":", 5)
    resource = parts[5].split("/") if len(parts) == 6 else []
    if len(resource) < 2 or resource[0] != "table" or not resource[1]:
        raise InvalidRecord(f"cannot find a table name in stream ARN {stream_arn!r}")
    return resource[1]


def wire_json(record: Mapping[str, Any]) -> bytes:
    """A Streams record dict back in its wire JSON: bytes as base64, datetimes as epoch
    seconds, Decimals as their exact digits."""
    try:
        return orjson.dumps(record, default=_wire_default, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except orjson.JSONEncodeError as error:
        raise InvalidRecord(f"the record cannot be written as JSON: {error}") from None


def _wire_default(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return binascii.b2a_base64(value, newline=False).decode("ascii")
    if isinstance(value, datetime):
        whole, fraction = divmod(us_from_datetime(value), 1_000_000)
        return orjson.Fragment(f"{whole}.{fraction:06d}" if fraction else str(whole))
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _event(
    record: dict[str, Any],
    body: dict[str, Any],
    position: RecordPosition,
    raw: bytes,
    table: str | None,
) -> ChangeEvent:
    name = event_name(record)
    check_source(record)
    created = body.get("ApproximateCreationDateTime")
    if created is None:
        raise InvalidRecord("dynamodb.ApproximateCreationDateTime is missing")
    return new_event(
        text(record, "eventID"),
        name,
        table if table is not None else table_from_stream_arn(position.stream),
        text(record, "awsRegion"),
        keys_image(body, position, raw),
        item_image(body, "NewImage", position, raw),
        item_image(body, "OldImage", position, raw),
        streams_created_at_us(created),
        is_ttl_delete(name, record.get("userIdentity")),
        size_bytes(body, len(raw)),
        position,
        raw,
        None,
    )


def _sequence_of(record: object) -> str:
    body = record.get("dynamodb") if isinstance(record, Mapping) else None
    sequence = body.get("SequenceNumber") if isinstance(body, Mapping) else None
    return sequence if type(sequence) is str else ""
