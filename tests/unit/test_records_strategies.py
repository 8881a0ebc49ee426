"""Hypothesis strategies and record builders shared by the test_records_* modules.

Items are generated as Python values and serialized with boto3's TypeSerializer, so the wire
form is exactly what boto3 (and DynamoDB) would produce. The tests at the bottom check the
generators themselves.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import orjson
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.records import RecordPosition, attribute, duplicates, kinesis

SERIALIZER = TypeSerializer()
DESERIALIZER = TypeDeserializer()
POSITION = RecordPosition(
    "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
    "shardId-000000000001",
    "49654063224564371338012546178361371012405536155209416706",
    0,
    1720046487123,
)


def dynamodb_numbers(*, boto3_range: bool = True) -> st.SearchStrategy[Decimal]:
    """Numbers DynamoDB stores: 1-38 significant digits (trailing zeros kept, as sent),
    magnitude 1E-130 to below 1E+126, either sign, and zero.

    boto3's context (Emin=-128, so no digit below 1E-165) cannot hold 37-38 digit numbers
    near 1E-130; with `boto3_range` their exponent is raised to -165, so TypeSerializer
    accepts every value.
    """

    def build(parts: tuple[int, int, bool]) -> Decimal:
        coefficient, adjusted, negative = parts
        digits = len(str(coefficient))
        exponent = adjusted - (digits - 1)
        if boto3_range:
            exponent = max(exponent, -165)
        return Decimal((int(negative), tuple(int(d) for d in str(coefficient)), exponent))

    return st.one_of(
        st.just(Decimal(0)),
        st.tuples(st.integers(1, 10**38 - 1), st.integers(-130, 125), st.booleans()).map(build),
        st.integers(-(10**18), 10**18).map(Decimal),
    )


def _texts(max_size: int) -> st.SearchStrategy[str]:
    # Any unicode (hypothesis leaves out lone surrogates, which UTF-8 cannot carry), biased
    # toward the characters that matter to JSON and to the image excision.
    tricky = st.sampled_from(
        ['"', "\\", "{", "}", "[", "]", ",", ":", "\n", "\x00", "\x01", "é", "😀", " "]
    )
    return st.text(st.one_of(st.characters(exclude_categories=("Cs",)), tricky), max_size=max_size)


SCALARS: st.SearchStrategy[Any] = st.one_of(
    _texts(20),
    dynamodb_numbers(),
    st.binary(max_size=24),
    st.booleans(),
    st.none(),
)
SETS: st.SearchStrategy[Any] = st.one_of(
    st.sets(_texts(8), min_size=1, max_size=4),
    st.sets(dynamodb_numbers(), min_size=1, max_size=4),
    st.sets(st.binary(max_size=8), min_size=1, max_size=4),
)
# Attribute names that collide with the record's own keys, to exercise the image excision.
ENVELOPE_NAMES = [
    "Keys",
    "NewImage",
    "OldImage",
    "SizeBytes",
    "ApproximateCreationDateTime",
    "ApproximateCreationDateTimePrecision",
    "dynamodb",
    "eventName",
    "eventID",
    "tableName",
    "awsRegion",
    "userIdentity",
]
NAMES: st.SearchStrategy[str] = st.one_of(_texts(12), st.sampled_from(ENVELOPE_NAMES))
VALUES: st.SearchStrategy[Any] = st.recursive(
    st.one_of(SCALARS, SETS),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(NAMES, children, max_size=4),
    ),
    max_leaves=16,
)
ITEMS: st.SearchStrategy[dict[str, Any]] = st.dictionaries(NAMES, VALUES, min_size=1, max_size=6)
KEYS: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    NAMES,
    st.one_of(_texts(10), dynamodb_numbers(), st.binary(max_size=10)),
    min_size=1,
    max_size=2,
)


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    """An item in typed JSON as boto3 writes it (binary values as bytes)."""
    return {name: SERIALIZER.serialize(value) for name, value in item.items()}


def deserialize(wire: dict[str, Any]) -> dict[str, Any]:
    """boto3's TypeDeserializer over an item: the reference for the python view."""
    return {name: DESERIALIZER.deserialize(value) for name, value in wire.items()}


def base64_binaries(value: Any) -> Any:
    """A typed-JSON value with bytes as base64 text, as in a Kinesis destination record."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {key: base64_binaries(member) for key, member in value.items()}
    if isinstance(value, list):
        return [base64_binaries(member) for member in value]
    return value


def destination_record(
    keys: dict[str, Any],
    new_image: dict[str, Any] | None,
    old_image: dict[str, Any] | None,
    *,
    event_name: str = "MODIFY",
    created: int = 1720046486486729,
    precision: str | None = "MICROSECOND",
    identity: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Kinesis destination record (as a dict) around typed-JSON keys and images; binary
    values are base64 text as in the real record."""
    body: dict[str, Any] = {"ApproximateCreationDateTime": created, "Keys": base64_binaries(keys)}
    if new_image is not None:
        body["NewImage"] = base64_binaries(new_image)
    if old_image is not None:
        body["OldImage"] = base64_binaries(old_image)
    body["SizeBytes"] = 321
    if precision is not None:
        body["ApproximateCreationDateTimePrecision"] = precision
    return {
        "awsRegion": "us-east-1",
        "dynamodb": body,
        "eventID": "8e3a3c8f-7c54-4d8a-9f1e-0f0c1a2b3c4d",
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "recordFormat": "application/json",
        "tableName": "Orders",
        "userIdentity": identity,
    }


INSERTIONS = (b'"', b"{", b"}", b",", b"\\", b"[1]")


def damaged(
    data: st.DataObject, payload: bytes, insertions: tuple[bytes, ...] = INSERTIONS
) -> bytes:
    """`payload` with 1-4 random bytes flipped, runs cut or JSON syntax inserted."""
    damaged_payload = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, len(damaged_payload) - 1))
        if action == "flip":
            damaged_payload[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del damaged_payload[at : at + data.draw(st.integers(1, 40))]
        else:
            damaged_payload[at:at] = data.draw(st.sampled_from(insertions))
        if not damaged_payload:
            damaged_payload = bytearray(b"x")
    return bytes(damaged_payload)


@contextmanager
def python_only() -> Iterator[None]:
    """The pure-Python decoder inside the block: the C fast path (consumer/records/_speedups.c)
    switched off, for the tests and benchmarks that compare the two."""
    names = ("_native_item", "_native_sharing", "_native_json", "_native_client")
    saved = [getattr(attribute, name) for name in names], kinesis._parse_change
    saved_parse, saved_envelope = duplicates.native_parse, kinesis._parse_envelope
    for name in names:
        setattr(attribute, name, None)
    kinesis._parse_change = None
    duplicates.native_parse = None
    kinesis._parse_envelope = None
    try:
        yield
    finally:
        for name, value in zip(names, saved[0], strict=True):
            setattr(attribute, name, value)
        kinesis._parse_change = saved[1]
        duplicates.native_parse = saved_parse
        kinesis._parse_envelope = saved_envelope


def compact(record: dict[str, Any]) -> bytes:
    """The record as DynamoDB writes it: compact JSON, UTF-8."""
    return orjson.dumps(record)


def json_literals(value: Any) -> Any:
    """The expected JSON view of a typed-JSON value, numbers as ("num", literal) pairs (what
    `json.loads` with literal-keeping parse hooks gives back), binary as base64 text."""
    ((tag, payload),) = value.items()
    if tag == "N":
        return ("num", payload)
    if tag == "NS":
        return [("num", member) for member in payload]
    if tag == "B":
        return base64_binaries(payload)
    if tag == "BS":
        return [base64_binaries(member) for member in payload]
    if tag == "NULL":
        return None
    if tag == "M":
        return {name: json_literals(member) for name, member in payload.items()}
    if tag == "L":
        return [json_literals(member) for member in payload]
    if tag == "SS":
        return list(payload)
    return payload


def literal_loads(text: bytes) -> Any:
    """JSON parsed with every number kept as ("num", its literal text)."""
    import json

    def number(literal: str) -> tuple[str, str]:
        return ("num", literal)

    return json.loads(text, parse_float=number, parse_int=number)


@settings(max_examples=50, deadline=None)
@given(ITEMS)
def test_generated_items_serialize_and_survive_json(item: dict[str, Any]) -> None:
    wire = serialize(item)
    assert deserialize(copy.deepcopy(wire)) == item
    record = destination_record(wire, wire, None)
    assert orjson.loads(compact(record))["dynamodb"]["NewImage"] == base64_binaries(wire)


@settings(max_examples=50, deadline=None)
@given(dynamodb_numbers(boto3_range=False))
def test_generated_numbers_are_in_dynamodb_range(number: Decimal) -> None:
    assert len(number.as_tuple().digits) <= 38
    assert number == 0 or -130 <= number.adjusted() <= 125
