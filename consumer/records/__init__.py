"""Exact, fast decoding of DynamoDB change records.

Decoders (each raises DecodeError, carrying the record's position, for bad input):

- `decode_destination_record(data, position)`: one Kinesis destination record's Data.
- `decode_kinesis_data(data, position)` / `decode_kinesis_record(record, stream, shard_id)`:
  a Kinesis record, KPL aggregates de-aggregated; one result per user record.
- `decode_streams_record(record, stream_arn, shard_id)`: a DynamoDB Streams GetRecords record.
- `decode_lambda_record(record)` / `decode_lambda_event(event)`: a Lambda DynamoDB event.

Each gives a `ChangeEvent` whose images (`Image`) decode lazily into `.wire`, `.python`,
`.json` and `.client` views. `strict=True` checks everything at decode time.
"""

from consumer.records.attribute import item_to_python, value_to_json, value_to_python
from consumer.records.errors import DecodeError
from consumer.records.event import ChangeEvent, EventName
from consumer.records.image import Image
from consumer.records.jsonout import change_document, iso_utc, to_json_bytes
from consumer.records.kinesis import (
    DecodeResult,
    decode_destination_record,
    decode_kinesis_data,
    decode_kinesis_record,
    kinesis_position,
)
from consumer.records.kpl import aggregate, deaggregate, is_aggregated
from consumer.records.number import DYNAMODB_NUMBERS, JsonNumber
from consumer.records.position import RecordPosition
from consumer.records.streams import (
    decode_lambda_event,
    decode_lambda_record,
    decode_streams_record,
    table_from_stream_arn,
)

__all__ = [
    "DYNAMODB_NUMBERS",
    "ChangeEvent",
    "DecodeError",
    "DecodeResult",
    "EventName",
    "Image",
    "JsonNumber",
    "RecordPosition",
    "aggregate",
    "change_document",
    "deaggregate",
    "decode_destination_record",
    "decode_kinesis_data",
    "decode_kinesis_record",
    "decode_lambda_event",
    "decode_lambda_record",
    "decode_streams_record",
    "is_aggregated",
    "iso_utc",
    "item_to_python",
    "kinesis_position",
    "table_from_stream_arn",
    "to_json_bytes",
    "value_to_json",
    "value_to_python",
]
