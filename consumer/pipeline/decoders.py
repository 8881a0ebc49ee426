"""Turning a reader's raw records into change events, per source."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from consumer.records import (
    ChangeEvent,
    DecodeError,
    decode_kinesis_data,
    decode_streams_record,
)
from consumer.records.batch import RawRecord
from consumer.records.position import new_position

# Turns one raw record into its changes (or a DecodeError standing in for a bad one).
Decoder = Callable[[RawRecord, str, str], Sequence[ChangeEvent | DecodeError]]


def decode_kinesis(
    record: RawRecord, stream: str, shard_id: str
) -> list[ChangeEvent | DecodeError]:
    """Envelope-only decoding of a Kinesis destination record (images decode when a sink asks);
    KPL aggregates are de-aggregated."""
    position = new_position(stream, shard_id, record.sequence_number, 0, record.arrival_ms)
    return decode_kinesis_data(record.data, position)


def decode_streams(
    record: RawRecord, stream: str, shard_id: str
) -> list[ChangeEvent | DecodeError]:
    """A DynamoDB Streams record (its wire JSON, as the Streams reader hands it over)."""
    try:
        return [decode_streams_record(record.data, stream, shard_id)]
    except DecodeError as error:
        return [error]
