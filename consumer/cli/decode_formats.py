"""The record shapes `consumer decode` reads (its --help describes them), and how `auto` tells
them apart by each line's keys (`detect`); `--format` names one outright."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from consumer.records import (
    DecodeError,
    DecodeResult,
    RecordPosition,
    decode_destination_record,
    decode_kinesis_data,
    decode_lambda_record,
    decode_streams_record,
)

FORMATS = ("auto", "destination", "streams", "lambda", "kinesis")
READS = (
    "a Kinesis destination record's Data (destination), a DynamoDB Streams record (streams), "
    "a Lambda DynamoDB event or record (lambda), or a Kinesis record with base64 Data, KPL "
    "aggregates included (kinesis)"
)
UNKNOWN_SHAPE = f"not a change record this command reads: it reads {READS}; see --format"
# Streams records carry no stream ARN: the table shows as this unless --table names it.
UNKNOWN_TABLE = "-"


def detect(record: object) -> str | None:
    """Which format a parsed line is, or None if it looks like none of them."""
    if not isinstance(record, Mapping):
        return None
    records = record.get("Records")
    if isinstance(records, list):
        first = next(iter(records), None)
        return "kinesis" if isinstance(first, Mapping) and _is_kinesis(first) else "lambda"
    if _is_kinesis(record):
        return "kinesis"
    if "eventSourceARN" in record:
        return "lambda"
    body = record.get("dynamodb")
    if not isinstance(body, Mapping):
        return None
    if "tableName" in record or "recordFormat" in record or "SequenceNumber" not in body:
        return "destination"
    return "streams"


def _is_kinesis(record: Mapping[str, Any]) -> bool:
    return "Data" in record or isinstance(record.get("kinesis"), Mapping)


def decode_line(
    payload: bytes, position: RecordPosition, record_format: str, table: str
) -> list[DecodeResult]:
    """Every change in one input line (a Lambda event or an aggregate holds several)."""
    if record_format == "destination":
        return _destination(payload, position)
    try:
        parsed: object = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        return [DecodeError(position, f"not JSON: {error}", payload)]
    if record_format == "auto":
        detected = detect(parsed)
        if detected is None:
            return [DecodeError(position, UNKNOWN_SHAPE, payload)]
        record_format = detected
    if record_format == "destination":
        return _destination(payload, position)
    if not isinstance(parsed, Mapping):
        return [DecodeError(position, f"not a JSON object ({READS})", payload)]
    records = parsed.get("Records")
    items: list[object] = records if isinstance(records, list) else [parsed]
    return [result for item in items for result in _one(item, position, record_format, table)]


def _destination(payload: bytes, position: RecordPosition) -> list[DecodeResult]:
    try:
        return [decode_destination_record(payload, position)]
    except DecodeError as error:
        return [error]


def _one(
    item: object, position: RecordPosition, record_format: str, table: str
) -> list[DecodeResult]:
    if not isinstance(item, Mapping):
        return [DecodeError(position, f"a record is not a JSON object ({READS})")]
    try:
        if record_format == "kinesis":
            return decode_kinesis_data(_kinesis_data(item, position), position)
        if record_format == "lambda":
            return [decode_lambda_record(item)]
        arn = f"arn:aws:dynamodb:::table/{table}/stream/decode"
        return [decode_streams_record(item, arn, position.shard_id, table=table)]
    except DecodeError as error:
        return [error]


def _kinesis_data(record: Mapping[str, Any], position: RecordPosition) -> bytes:
    nested = record.get("kinesis")
    text = nested.get("data") if isinstance(nested, Mapping) else record.get("Data")
    if not isinstance(text, str):
        raise DecodeError(position, "a Kinesis record without base64 Data (or kinesis.data)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(position, "a Kinesis record whose Data is not base64") from None
