"""Decoder for DynamoDB change records written to Kinesis by the Kinesis Data Streams
destination (KPL-aggregated or not).

By default only the envelope is decoded; the images are kept as received (typed JSON) and
converted when a view is first asked for. `strict=True` also computes the python view of every
image, so every DecodeError surfaces at decode time. The images are parsed, not cut out of the
text: cutting by key markers is wrong for real items (an attribute named "NewImage" inside a
REMOVE's OldImage), and the check that makes it exact costs about what the cut saves.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from consumer.records import duplicates
from consumer.records.attribute import WireItem
from consumer.records.envelope import (
    DYNAMODB_SOURCE,
    EVENT_NAMES,
    body_object,
    check_key_types,
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
from consumer.records.image import Image, new_image
from consumer.records.kpl import deaggregate, is_aggregated
from consumer.records.position import RecordPosition
from consumer.records.timestamps import MAX_US, MICROSECOND, arrival_ms, kinesis_created_at_us

# A decoded user record, or the error that stands in its place (for the dead-letter queue).
DecodeResult: TypeAlias = ChangeEvent | DecodeError

try:
    from consumer.records import _speedups
except ImportError:  # not compiled: every record takes the general path
    _speedups = None  # type: ignore[assignment]  # a module or None; mypy sees only the module

_parse_record = duplicates.parse_record
# The C parsers, configured by attribute.py (imported above), when the extension was built:
# the one-pass parser of strict decoding, and the envelope path's (see below).
_Parser: TypeAlias = Callable[[bytes], dict[str, Any] | None]
_parse_change: _Parser | None = None if _speedups is None else _speedups.parse_change
_parse_envelope: _Parser | None = None if _speedups is None else _speedups.parse_envelope
_regular_keys: Callable[[Any], bool] | None = None if _speedups is None else _speedups.regular_keys


def decode_destination_record(
    data: bytes, position: RecordPosition, *, strict: bool = False
) -> ChangeEvent:
    """One change from a Kinesis destination record's Data (JSON bytes).

    Raises DecodeError (with `position`) if it is not a DynamoDB change. Without `strict`,
    errors inside the images surface as DecodeError when a view is first asked for.
    """
    if type(data) is not bytes:
        data = bytes(data)
    if not strict:
        fast = _envelope_event(data, position)
        if fast is not None:
            return fast
    elif _parse_change is not None:
        # One C pass builds the python views of the images directly; None means it did not
        # handle this record (or it is invalid) and the general path below decides, with the
        # precise error.
        parsed = _parse_change(data)
        if parsed is not None:
            try:
                return _event(parsed, data, position, _DeferredImages(data, position))
            except InvalidRecord as error:
                raise DecodeError(position, error.reason, data) from None
    try:
        # Parsed so that a repeated key anywhere is an error (see duplicates.py).
        event = _event(_parse_record(data), data, position)
    except InvalidRecord as error:
        raise DecodeError(position, error.reason, data) from None
    if strict:
        event.validate()
    return event


def decode_kinesis_data(
    data: bytes, position: RecordPosition, *, strict: bool = False
) -> list[DecodeResult]:
    """Every change in one Kinesis record's Data, de-aggregating KPL aggregates.

    One result per user record, in order: the event, or the DecodeError for a bad one, so
    one bad user record does not take its siblings with it. A corrupt aggregate gives a
    single DecodeError.
    """
    if not is_aggregated(data):  # the common case, without the UserRecord
        plain = position.with_sub_sequence(0)
        event = None if strict else _envelope_event(data, plain)
        if event is not None:
            return [event]
        try:
            return [decode_destination_record(data, plain, strict=strict)]
        except DecodeError as error:
            return [error]
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
    if not position.sequence_number:
        return [DecodeError(position, "the Kinesis record has no SequenceNumber")]
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


def _event(
    parsed: object, data: bytes, position: RecordPosition, views: _DeferredImages | None = None
) -> ChangeEvent:
    # Each field is read once with inline checks; when one fails, the envelope helper for that
    # field raises with the reason. With `views`, the images in `parsed` are python views
    # (from parse_change) and `views` loads their typed JSON when another view is asked for.
    record = parsed if type(parsed) is dict else record_object(parsed)
    body = record.get("dynamodb")
    if type(body) is not dict:
        body = body_object(record)
    event_id = record.get("eventID")
    table = record.get("tableName")
    region = record.get("awsRegion")
    if type(event_id) is not str or type(table) is not str or type(region) is not str:
        event_id = text(record, "eventID")
        table = text(record, "tableName")
        region = text(record, "awsRegion")
    name_text = record.get("eventName")
    name = EVENT_NAMES.get(name_text) if type(name_text) is str else None
    if name is None:
        name = event_name(record)
    if record.get("eventSource", DYNAMODB_SOURCE) != DYNAMODB_SOURCE:
        check_source(record)
    identity = record.get("userIdentity")
    keys = body.get("Keys")
    if type(keys) is dict and keys:
        if views is None:  # (parse_change leaves Keys that break a key rule to this path)
            check_key_types(keys)
        keys_view = _image(keys, position, "Keys", data, views)
    else:
        keys_view = keys_image(body, position, data)  # raises: no keys
    new_image = body.get("NewImage")
    if new_image is not None and type(new_image) is not dict:
        item_image(body, "NewImage", position, data)
    old_image = body.get("OldImage")
    if old_image is not None and type(old_image) is not dict:
        item_image(body, "OldImage", position, data)
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
        None if new_image is None else _image(new_image, position, "NewImage", data, views),
        None if old_image is None else _image(old_image, position, "OldImage", data, views),
        created_at_us,
        False if identity is None else is_ttl_delete(name, identity),
        size,
        position,
        data,
        record if views is None else views.record,
    )


def _image(
    value: dict[str, Any],
    position: RecordPosition,
    label: str,
    data: bytes,
    views: _DeferredImages | None,
) -> Image:
    if views is None:
        return Image(value, position, label, data)
    return views.image(value, label)


# --- the envelope-only fast path ----------------------------------------------------------
#
# The C parser checks the whole record as JSON but builds only the envelope and the Keys: each
# item image stays bytes (`...`) until a view is asked for; then one parse serves both images
# and `record()`. Anything irregular (None) takes the full path, which gives the DecodeError.


class _DeferredImages:
    """Parses the record once, on the first image view or `record()` asked for, for both
    images and the event's `record()` (filters)."""

    __slots__ = ("_data", "_position", "_record")

    def __init__(self, data: bytes, position: RecordPosition) -> None:
        self._data = data
        self._position = position
        self._record: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        record = self._record
        if record is None:
            try:
                record = self._record = _parse_record(self._data)
            except InvalidRecord as error:  # a repeated key (the envelope was read already)
                raise DecodeError(self._position, error.reason, self._data) from None
        return record

    def _image(self, name: str) -> WireItem:
        image: WireItem = self.record()["dynamodb"][name]
        return image

    def new_image(self) -> WireItem:
        return self._image("NewImage")

    def old_image(self) -> WireItem:
        return self._image("OldImage")

    def image(self, value: Any, label: str) -> Image:
        """The Image whose python view is `value`; its typed JSON is parsed when asked for."""
        return Image(None, self._position, label, self._data, lambda: self._image(label), value)


def _envelope_event(data: bytes, position: RecordPosition) -> ChangeEvent | None:
    record = _parse_envelope(data) if _parse_envelope is not None else None
    if record is None:
        return None
    body = record.get("dynamodb")
    if type(body) is not dict:
        return None
    event_id = record.get("eventID")
    table = record.get("tableName")
    region = record.get("awsRegion")
    name_text = record.get("eventName")
    name = EVENT_NAMES.get(name_text) if type(name_text) is str else None
    identity = record.get("userIdentity")
    keys = body.get("Keys")
    new = body.get("NewImage")
    old = body.get("OldImage")
    created = body.get("ApproximateCreationDateTime")
    precision = body.get("ApproximateCreationDateTimePrecision")
    size = body.get("SizeBytes")
    if (
        type(event_id) is not str
        or type(table) is not str
        or type(region) is not str
        or name is None
        or record.get("eventSource") != DYNAMODB_SOURCE
        or (identity is not None and type(identity) is not dict)
        or not _regular_keys(keys)  # type: ignore[misc]  # set with _parse_envelope
        or (new is not None and new is not ...)
        or (old is not None and old is not ...)
        or type(size) is not int
        or size < 0
    ):
        return None
    if type(created) is int and precision == MICROSECOND and 0 <= created <= MAX_US:
        created_at_us = created
    else:
        try:
            created_at_us = kinesis_created_at_us(created, precision)
        except InvalidRecord:
            return None
    images = _DeferredImages(data, position)
    return new_event(
        event_id,
        name,
        table,
        region,
        new_image(keys, position, "Keys", data, None),
        None if new is None else new_image(None, position, "NewImage", data, images.new_image),
        None if old is None else new_image(None, position, "OldImage", data, images.old_image),
        created_at_us,
        False if identity is None else is_ttl_delete(name, identity),
        size,
        position,
        data,
        images.record,
    )
