"""Decoder for DynamoDB change records written to Kinesis by the Kinesis Data Streams
destination (and for streams written by other producers, KPL-aggregated or not).

A record's Data is JSON: `awsRegion, eventID, eventName, userIdentity, recordFormat,
tableName, dynamodb{ApproximateCreationDateTime, ApproximateCreationDateTimePrecision, Keys,
NewImage, OldImage, SizeBytes}, eventSource`.

By default only the envelope is decoded: the images are cut out unparsed (excise.py) and
parsed when a view is first asked for. `strict=True` parses everything and computes the
python view of every image at once, so every DecodeError surfaces at decode time.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any, TypeAlias

import orjson

from consumer.records.envelope import (
    DYNAMODB_SOURCE,
    EVENT_NAMES,
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
from consumer.records.excise import NEW_IMAGE, OLD_IMAGE, Split, split_images, verify
from consumer.records.image import Image
from consumer.records.kpl import deaggregate
from consumer.records.position import RecordPosition
from consumer.records.timestamps import MAX_US, MICROSECOND, arrival_ms, kinesis_created_at_us

# A decoded user record, or the error that stands in its place (for the dead-letter queue).
DecodeResult: TypeAlias = ChangeEvent | DecodeError

_loads = orjson.loads
_NOT_SPLIT: Split = (b"", -1, -1, -1, -1)
_JSONDecodeError = orjson.JSONDecodeError


def decode_destination_record(
    data: bytes, position: RecordPosition, *, strict: bool = False
) -> ChangeEvent:
    """One change from a Kinesis destination record's Data (JSON bytes).

    Raises DecodeError (with `position`) if it is not a DynamoDB change. Without `strict`,
    errors inside the images surface as DecodeError when a view is first asked for.
    """
    if type(data) is not bytes:
        data = bytes(data)
    try:
        if strict:
            event = _event(_parse(data), data, position, _NOT_SPLIT)
            event.validate()
            return event
        split = split_images(data)
        if split is not None:
            try:
                parsed = _loads(split[0])
            except _JSONDecodeError:
                parsed = None
            if verify(parsed, split[1], split[3]):
                return _event(parsed, data, position, split)
        return _event(_parse(data), data, position, _NOT_SPLIT)
    except InvalidRecord as error:
        raise DecodeError(position, error.reason, data) from None


def decode_kinesis_data(
    data: bytes, position: RecordPosition, *, strict: bool = False
) -> list[DecodeResult]:
    """Every change in one Kinesis record's Data, de-aggregating KPL aggregates.

    One result per user record, in order: the event, or the DecodeError for a bad one, so
    one bad user record does not take its siblings with it. A corrupt aggregate gives a
    single DecodeError.
    """
    try:
        records = deaggregate(data, position)
    except DecodeError as error:
        return [error]
    results: list[DecodeResult] = []
    for record in records:
        try:
            results.append(decode_destination_record(record.data, record.position, strict=strict))
        except DecodeError as error:
            results.append(error)
    return results


def kinesis_position(record: Mapping[str, Any], stream: str, shard_id: str) -> RecordPosition:
    """The position of a Kinesis record as boto3/aiobotocore return it (GetRecords,
    SubscribeToShard): SequenceNumber, ApproximateArrivalTimestamp."""
    sequence = record.get("SequenceNumber")
    try:
        arrival = arrival_ms(record.get("ApproximateArrivalTimestamp"))
    except InvalidRecord:
        arrival = None
    return RecordPosition(stream, shard_id, sequence if type(sequence) is str else "", 0, arrival)


def decode_kinesis_record(
    record: Mapping[str, Any], stream: str, shard_id: str, *, strict: bool = False
) -> list[DecodeResult]:
    """Every change in one Kinesis record as boto3/aiobotocore return it.

    `Data` is bytes (the SDK has removed the API's base64 layer); base64 text, as in the raw
    API's JSON or a Lambda Kinesis event, is accepted too.
    """
    position = kinesis_position(record, stream, shard_id)
    data = record.get("Data")
    if type(data) is str:
        try:
            data = binascii.a2b_base64(data, strict_mode=True)
        except ValueError:
            return [DecodeError(position, "Data is not valid base64")]
    if type(data) is bytearray or type(data) is memoryview:
        data = bytes(data)
    if type(data) is not bytes:
        return [DecodeError(position, "the Kinesis record has no Data bytes")]
    return decode_kinesis_data(data, position, strict=strict)


def _parse(data: bytes) -> object:
    try:
        return _loads(data)
    except _JSONDecodeError as error:
        raise InvalidRecord(f"not JSON: {error}") from None


def _event(
    parsed: object,
    data: bytes,
    position: RecordPosition,
    split: Split,
) -> ChangeEvent:
    # Every check is inline on the common path; the envelope helpers, which name the problem,
    # run only when one fails.
    record = record_object(parsed)
    body = record.get("dynamodb")
    if type(body) is not dict:
        body = body_object(record)
    event_id = record.get("eventID")
    table = record.get("tableName")
    region = record.get("awsRegion")
    if type(event_id) is not str or type(table) is not str or type(region) is not str:
        event_id, table, region = (
            text(record, "eventID"),
            text(record, "tableName"),
            text(record, "awsRegion"),
        )
    name_text = record.get("eventName")
    name = EVENT_NAMES.get(name_text) if type(name_text) is str else None
    if name is None:
        name = event_name(record)
    source = record.get("eventSource")
    if source is not None and source != DYNAMODB_SOURCE:
        check_source(record)
    identity = record.get("userIdentity")
    ttl_delete = False if identity is None else is_ttl_delete(name, identity)

    keys = body.get("Keys")
    keys_view = (
        Image(keys, position, "Keys", data) if type(keys) is dict and keys else None
    ) or keys_image(body, position, data)
    _, new_start, new_end, old_start, old_end = split
    if new_start < 0:
        new_image = item_image(body, NEW_IMAGE, position, data)
    else:
        new_image = Image.unparsed(data, new_start, new_end, position, NEW_IMAGE)
    if old_start < 0:
        old_image = item_image(body, OLD_IMAGE, position, data)
    else:
        old_image = Image.unparsed(data, old_start, old_end, position, OLD_IMAGE)

    created = body.get("ApproximateCreationDateTime")
    precision = body.get("ApproximateCreationDateTimePrecision")
    if type(created) is int and precision == MICROSECOND and 0 <= created <= MAX_US:
        created_at_us = created
    else:
        created_at_us = kinesis_created_at_us(created, precision)
    size = body.get("SizeBytes")
    if type(size) is not int or size < 0:
        size = size_bytes(body, len(data))
    return new_event(
        event_id,
        name,
        table,
        region,
        keys_view,
        new_image,
        old_image,
        created_at_us,
        ttl_delete,
        size,
        position,
        data,
    )
