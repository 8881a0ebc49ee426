"""Image views: python (equal to boto3's TypeDeserializer), JSON (exact numbers), wire, client."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.records import (
    DecodeError,
    Image,
    JsonNumber,
    decode_destination_record,
    decode_streams_record,
    item_to_python,
    to_json_bytes,
    value_to_json,
    value_to_python,
)
from consumer.records.errors import InvalidAttribute
from tests.unit.test_records_strategies import (
    ITEMS,
    KEYS,
    POSITION,
    base64_binaries,
    compact,
    deserialize,
    destination_record,
    dynamodb_numbers,
    json_literals,
    literal_loads,
    serialize,
)

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2024-07-03T00:00:00.000"


def image(wire: dict[str, Any]) -> Image:
    return Image(wire, POSITION, "NewImage", b"raw")


@settings(max_examples=100, deadline=None)
@given(KEYS, ITEMS, ITEMS)
def test_kinesis_record_views_round_trip_against_boto3(
    keys: dict[str, Any], new: dict[str, Any], old: dict[str, Any]
) -> None:
    keys_wire, new_wire, old_wire = serialize(keys), serialize(new), serialize(old)
    data = compact(destination_record(keys_wire, new_wire, old_wire))

    for strict in (False, True):
        event = decode_destination_record(data, POSITION, strict=strict)
        assert event.new_image is not None
        assert event.old_image is not None
        for view, wire, item in (
            (event.keys, keys_wire, keys),
            (event.new_image, new_wire, new),
            (event.old_image, old_wire, old),
        ):
            assert view.python == deserialize(wire) == item
            assert view.wire == base64_binaries(wire)
            assert view.client == wire
            expected_json = {name: json_literals(value) for name, value in wire.items()}
            assert literal_loads(to_json_bytes(view.json)) == expected_json


@settings(max_examples=60, deadline=None)
@given(KEYS, ITEMS)
def test_boto3_streams_shape_with_bytes_round_trips(
    keys: dict[str, Any], new: dict[str, Any]
) -> None:
    keys_wire, new_wire = serialize(keys), serialize(new)
    record = {
        "awsRegion": "us-east-1",
        "eventID": "1",
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "ApproximateCreationDateTime": 1720046486,
            "Keys": keys_wire,
            "NewImage": new_wire,
            "SequenceNumber": "300000000000000499659",
            "SizeBytes": 12,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }
    event = decode_streams_record(record, STREAM_ARN, "shardId-1")
    assert event.new_image is not None
    assert event.new_image.python == new
    assert event.new_image.wire is new_wire  # untouched: binary stays bytes
    assert event.new_image.client == new_wire
    expected_json = {name: json_literals(value) for name, value in new_wire.items()}
    assert literal_loads(to_json_bytes(event.new_image.json)) == expected_json
    # The raw wire JSON carries binary as base64, like the Streams API's own JSON.
    raw = orjson.loads(event.raw)
    assert raw["dynamodb"]["NewImage"] == base64_binaries(new_wire)


@settings(max_examples=200, deadline=None)
@given(dynamodb_numbers(boto3_range=False))
def test_numbers_decode_exactly_over_dynamodbs_whole_range(number: Decimal) -> None:
    text = str(number)
    python = value_to_python({"N": text})
    assert python == number
    assert str(python) == text
    json_number = value_to_json({"N": text})
    assert isinstance(json_number, JsonNumber)
    assert json_number.literal == text
    assert to_json_bytes([json_number]) == f"[{text}]".encode()


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "-0",
        "1.50",
        "1E+125",
        "1E-130",
        "-0.0001",
        "123",
        "0.0000001",
        "1e5",
        "12345678901234567890123456789012345678",
        "9.9999999999999999999999999999999999999E+125",
        "-9.9999999999999999999999999999999999999E+125",
        "1.0000000000000000000000000000000000001E-130",
    ],
)
def test_number_literals_are_written_with_dynamodbs_digits(text: str) -> None:
    value = value_to_json({"N": text})
    assert to_json_bytes({"n": value}) == b'{"n":' + text.encode() + b"}"
    assert value == Decimal(text)
    assert value_to_python({"N": text}) == Decimal(text)
    assert str(value_to_python({"N": text})) == str(Decimal(text))


@pytest.mark.parametrize(
    ("text", "written"),
    [("+5", "5"), (".5", "0.5"), ("5.", "5"), ("007", "7"), ("-.25E3", "-2.5E+2")],
)
def test_number_literals_that_are_not_json_are_normalized_minimally(
    text: str, written: str
) -> None:
    value = value_to_json({"N": text})
    assert to_json_bytes(value) == written.encode()
    assert value == Decimal(text)


def test_boto3_equivalence_on_numbers_boto3_accepts() -> None:
    # Within DynamoDB's range (1E+126, which boto3 also accepts, is past it: see
    # test_decode_rules.py).
    for text in ["1E-128", "1.5E-130", "9.9E+125", "123.4500", "-0", "0E-10"]:
        assert value_to_python({"N": text}) == deserialize({"x": {"N": text}})["x"]
        assert str(value_to_python({"N": text})) == str(deserialize({"x": {"N": text}})["x"])


def test_all_types_and_empty_values() -> None:
    wire = {
        "s": {"S": ""},
        "unicode": {"S": "Grüße 世界 😀 \x00"},
        "b": {"B": ""},
        "bytes": {"B": "AAEC/w=="},
        "ss": {"SS": ["a", ""]},
        "ns": {"NS": ["1", "2.0"]},
        "bs": {"BS": ["AQ==", ""]},
        "m": {"M": {}},
        "l": {"L": []},
        "null": {"NULL": True},
        "t": {"BOOL": True},
        "f": {"BOOL": False},
    }
    view = image(wire)
    assert view.python == {
        "s": "",
        "unicode": "Grüße 世界 😀 \x00",
        "b": b"",
        "bytes": b"\x00\x01\x02\xff",
        "ss": {"a", ""},
        "ns": {Decimal(1), Decimal("2.0")},
        "bs": {b"\x01", b""},
        "m": {},
        "l": [],
        "null": None,
        "t": True,
        "f": False,
    }
    assert orjson.loads(to_json_bytes(view.json)) == {
        "s": "",
        "unicode": "Grüße 世界 😀 \x00",
        "b": "",
        "bytes": "AAEC/w==",
        "ss": ["a", ""],
        "ns": [1, 2.0],
        "bs": ["AQ==", ""],
        "m": {},
        "l": [],
        "null": None,
        "t": True,
        "f": False,
    }
    assert view.client["bytes"] == {"B": b"\x00\x01\x02\xff"}
    assert view.client["bs"] == {"BS": [b"\x01", b""]}
    assert view.client["s"] is wire["s"]  # copy on write: unchanged values are shared


def test_client_view_of_an_item_without_binary_is_the_wire_item() -> None:
    wire = {"a": {"S": "x"}, "m": {"M": {"n": {"N": "1"}}}, "l": {"L": [{"NULL": True}]}}
    assert image(wire).client is wire


def test_views_are_cached() -> None:
    view = image({"a": {"N": "1"}})
    assert view.python is view.python
    assert view.json is view.json
    assert view.client is view.client


def nested(depth: int, leaf: dict[str, Any]) -> dict[str, Any]:
    value = leaf
    for level in range(depth):
        value = {"M": {"m": value}} if level % 2 else {"L": [value]}
    return value


def test_nesting_to_dynamodbs_32_levels() -> None:
    # The leaf at level 32 (the top-level attribute is level 1): 31 containers, DynamoDB's most.
    wire = {"deep": nested(31, {"N": "1.5"})}
    view = image(wire)
    assert view.python == deserialize(wire)
    expected = {"deep": json_literals(wire["deep"])}
    assert literal_loads(to_json_bytes(view.json)) == expected
    assert view.client is wire


def test_nesting_far_beyond_the_recursion_limit_is_a_decode_error() -> None:
    view = image({"deep": nested(5000, {"S": "x"})})
    with pytest.raises(DecodeError, match="nested deeper than DynamoDB's 32 levels"):
        view.python  # noqa: B018 (evaluated for the error it raises)


BAD_VALUES = [
    ({"X": "1"}, "unknown type tag 'X'"),
    ({"s": "x"}, "unknown type tag 's'"),
    ({}, "exactly one type tag"),
    ({"S": "a", "N": "1"}, "exactly one type tag"),
    ("x", "an object with one type tag"),
    (None, "an object with one type tag"),
    ({"S": 1}, "S value must be a string"),
    ({"S": None}, "S value must be a string"),
    ({"N": 1}, "must be a string"),
    ({"N": "abc"}, "not a"),
    ({"N": ""}, "not a"),
    ({"N": " 1"}, "not a"),
    ({"N": "1_000"}, "not a"),
    ({"N": "NaN"}, "not a finite number"),
    ({"N": "Infinity"}, "not a finite number"),
    ({"N": "-inf"}, "not a finite number"),
    ({"N": "sNaN"}, "not a finite number"),
    ({"N": "1E+127"}, "not a DynamoDB number"),
    ({"N": "1" * 39}, "not a DynamoDB number"),
    ({"N": "1E-200"}, "not a DynamoDB number"),
    ({"N": "0E+200"}, "not a DynamoDB number"),
    ({"B": "!!!!"}, "invalid base64"),
    ({"B": "QQ="}, "invalid base64"),
    ({"B": "QR=="}, "non-canonical base64"),
    ({"B": "QQ==="}, "base64"),
    ({"B": "QUJD\n"}, "invalid base64"),
    ({"B": "Ü"}, "invalid base64"),
    ({"B": 5}, "base64 text or bytes"),
    ({"BOOL": "true"}, "BOOL value must be true or false"),
    ({"BOOL": 1}, "BOOL value must be true or false"),
    ({"NULL": False}, "NULL value must be true"),
    ({"SS": "a"}, "must be an array"),
    ({"SS": [1]}, "SS member must be a string"),
    ({"NS": ["x"]}, "not a"),
    ({"NS": [1]}, "must be a string"),
    ({"BS": ["***"]}, "invalid base64"),
    ({"M": []}, "must be an object"),
    ({"M": {"a": {"Q": 1}}}, "unknown type tag 'Q'"),
    ({"L": {}}, "must be an array"),
    ({"L": [{"S": "ok"}, {"N": "x"}]}, "not a"),
]


@pytest.mark.parametrize(("value", "reason"), BAD_VALUES)
def test_bad_attribute_values_raise_decode_error_from_every_view(value: Any, reason: str) -> None:
    for view in ("python", "json", "client"):
        wire = {"ok": {"S": "fine"}, "bad": value}
        with pytest.raises(DecodeError, match=reason) as raised:
            getattr(image(wire), view)
        assert raised.value.position == POSITION
        assert raised.value.raw == b"raw"
        assert raised.value.reason.startswith("NewImage['bad']")


def test_error_path_names_the_nested_value() -> None:
    wire = {"order": {"M": {"lines": {"L": [{"S": "a"}, {"M": {"price": {"N": "x1"}}}]}}}}
    with pytest.raises(DecodeError) as raised:
        image(wire).python  # noqa: B018 (evaluated for the error it raises)
    assert raised.value.reason.startswith("NewImage['order']['lines'][1]['price']:")


def test_an_item_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(InvalidAttribute):
        item_to_python([])


@given(st.binary(max_size=64))
def test_binary_is_bytes_in_python_and_canonical_base64_in_json(data: bytes) -> None:
    text = base64.b64encode(data).decode()
    assert value_to_python({"B": text}) == data
    assert value_to_json({"B": text}) == text
    assert value_to_python({"B": data}) == data
    assert value_to_json({"B": data}) == text
