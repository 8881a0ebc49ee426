"""KPL aggregation: many user records packed into one Kinesis record.

Format (the Kinesis Producer Library's, which KCL de-aggregates): the magic bytes
F3 89 9A C2, a protobuf `AggregatedRecord`, then the 16-byte MD5 digest of the protobuf bytes.

    message AggregatedRecord {
      repeated string partition_key_table     = 1;
      repeated string explicit_hash_key_table = 2;
      repeated Record records                 = 3;
    }
    message Record {
      required uint64 partition_key_index     = 1;
      optional uint64 explicit_hash_key_index = 2;
      required bytes  data                    = 3;
      repeated Tag    tags                    = 4;   // ignored
    }

User records share the Kinesis record's sequence number; their index is the sub-sequence number
(KCL's numbering; 0 for a record without the magic bytes). The small protobuf reader here
skips unknown fields, as protobuf requires.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from consumer.records.errors import DecodeError
from consumer.records.position import RecordPosition

MAGIC = b"\xf3\x89\x9a\xc2"
_DIGEST_SIZE = 16

_VARINT = 0
_FIXED64 = 1
_LENGTH_DELIMITED = 2
_FIXED32 = 5


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One user record: its payload and where it sits (sub-sequence number included).

    `partition_key` and `explicit_hash_key` are the ones the producer gave it inside the
    aggregate; for a record that is not aggregated they are unknown here ("" and None).
    """

    position: RecordPosition
    data: bytes
    partition_key: str = ""
    explicit_hash_key: str | None = None


class _Corrupt(Exception):
    pass


def is_aggregated(data: bytes) -> bool:
    """Whether `data` starts with the KPL magic bytes."""
    return data[:4] == MAGIC


def deaggregate(data: bytes, position: RecordPosition) -> list[UserRecord]:
    """The user records in one Kinesis record's data, numbered from 0.

    A record that is not aggregated passes through as sub-sequence number 0. An aggregate
    whose digest does not match or whose protobuf is malformed raises DecodeError (KCL would
    instead pass it on whole, which here could only fail later as "not JSON").
    """
    if not is_aggregated(data):
        return [UserRecord(position.with_sub_sequence(0), data)]
    if len(data) < len(MAGIC) + _DIGEST_SIZE:
        raise DecodeError(position, "KPL aggregate too short", data)
    body = data[len(MAGIC) : -_DIGEST_SIZE]
    if hashlib.md5(body, usedforsecurity=False).digest() != data[-_DIGEST_SIZE:]:
        raise DecodeError(position, "KPL aggregate MD5 digest does not match", data)
    try:
        return _user_records(memoryview(body), position)
    except _Corrupt as error:
        raise DecodeError(position, f"malformed KPL aggregate: {error}", data) from None


def aggregate(records: Sequence[tuple[str, bytes]]) -> bytes:
    """A KPL aggregate of (partition key, data) records, as the KPL writes it.

    Used by tests and local tooling; partition keys are deduplicated into the key table.
    """
    keys: dict[str, int] = {}
    body = bytearray()
    for partition_key, _ in records:
        if partition_key not in keys:
            keys[partition_key] = len(keys)
            _put_bytes(body, 1, partition_key.encode())
    for partition_key, payload in records:
        message = bytearray()
        _put_varint(message, 1 << 3 | _VARINT)
        _put_varint(message, keys[partition_key])
        _put_bytes(message, 3, payload)
        _put_bytes(body, 3, bytes(message))
    digest = hashlib.md5(body, usedforsecurity=False).digest()
    return MAGIC + bytes(body) + digest


def _user_records(body: memoryview, position: RecordPosition) -> list[UserRecord]:
    partition_keys: list[str] = []
    hash_keys: list[str] = []
    messages: list[memoryview] = []
    for number, value in _fields(body):
        if number == 1:
            partition_keys.append(_text(value))
        elif number == 2:
            hash_keys.append(_text(value))
        elif number == 3:
            messages.append(_message(value))
    records = []
    for index, message in enumerate(messages):
        key_index: int | None = None
        hash_index: int | None = None
        payload: bytes | None = None
        for number, value in _fields(message):
            if number == 1:
                key_index = _integer(value)
            elif number == 2:
                hash_index = _integer(value)
            elif number == 3:
                payload = bytes(_message(value))
        if key_index is None or payload is None:
            raise _Corrupt(f"record {index} lacks its partition key index or data")
        if key_index >= len(partition_keys):
            raise _Corrupt(f"record {index} has partition key index {key_index} out of range")
        if hash_index is not None and hash_index >= len(hash_keys):
            raise _Corrupt(f"record {index} has hash key index {hash_index} out of range")
        records.append(
            UserRecord(
                position.with_sub_sequence(index),
                payload,
                partition_keys[key_index],
                None if hash_index is None else hash_keys[hash_index],
            )
        )
    return records


def _fields(buffer: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) for each field: an int for varints, a view for bytes fields."""
    position = 0
    end = len(buffer)
    while position < end:
        tag, position = _varint(buffer, position)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise _Corrupt("field number 0")
        if wire_type == _VARINT:
            value, position = _varint(buffer, position)
            yield number, value
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _varint(buffer, position)
            if position + length > end:
                raise _Corrupt("length-delimited field runs past the end")
            yield number, buffer[position : position + length]
            position += length
        elif wire_type == _FIXED64:
            position += 8
        elif wire_type == _FIXED32:
            position += 4
        else:
            raise _Corrupt(f"unsupported wire type {wire_type}")
        if position > end:
            raise _Corrupt("fixed-size field runs past the end")


def _varint(buffer: memoryview, position: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while position < len(buffer):
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
        if shift >= 64:
            raise _Corrupt("varint longer than 64 bits")
    raise _Corrupt("truncated varint")


def _integer(value: int | memoryview) -> int:
    if isinstance(value, memoryview):
        raise _Corrupt("expected a varint field")
    return value


def _message(value: int | memoryview) -> memoryview:
    if not isinstance(value, memoryview):
        raise _Corrupt("expected a length-delimited field")
    return value


def _text(value: int | memoryview) -> str:
    try:
        return bytes(_message(value)).decode()
    except UnicodeDecodeError:
        raise _Corrupt("a key is not UTF-8") from None


def _put_varint(buffer: bytearray, value: int) -> None:
    while value >= 0x80:
        buffer.append(value & 0x7F | 0x80)
        value >>= 7
    buffer.append(value)


def _put_bytes(buffer: bytearray, number: int, payload: bytes) -> None:
    _put_varint(buffer, number << 3 | _LENGTH_DELIMITED)
    _put_varint(buffer, len(payload))
    buffer.extend(payload)
