"""Decoding follows DynamoDB's own rules (issue 20, item 3), on the C path and the pure-Python one.

A record that breaks one is a DecodeError whose reason names where (the image and attribute
path) and which rule, never a value. The rules and where they are written:

- Sets: "Each value within a set must be unique ... DynamoDB does not support empty sets,
  however, empty string and binary values are allowed within a set." (Amazon DynamoDB
  Developer Guide, "Supported data types and naming rules", Sets:
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html)
- Key attributes: "each primary key attribute (partition key and sort key) ... must be defined
  as type string, number, or binary" (same page, Data types); a primary key is a partition key,
  or a partition key and a sort key (Core components, Primary key:
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.CoreComponents.html).
- Numbers: "Numbers can have up to 38 digits of precision. Exceeding this results in an
  exception. Positive range: 1E-130 to 9.9999999999999999999999999999999999999E+125. Negative
  range: -9.9999999999999999999999999999999999999E+125 to -1E-130" (same page, Number).
- Nesting: "DynamoDB supports nested attributes up to 32 levels deep" (Quotas, Attributes:
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html), a
  top-level attribute counting as level 1: real DynamoDB accepts a scalar inside 31 map
  wrappers and rejects one inside 32 ("Nesting Levels have exceeded supported limits",
  captured against DynamoDB by the dynoxide emulator's conformance test tests/nesting_depth.rs).
- Repeated keys: an item's attribute names are its map keys (unique), an attribute value has
  one type (one tag), and JSON parsers disagree on a repeated key (simdjson reads the first,
  orjson the last), so a record that repeats a key anywhere cannot be read one way.

Both paths must agree: every case here, and generated records broken at random, give the same
outcome with the C fast path and without it (`assert_same` from test_records_native).
"""

from __future__ import annotations

import copy
import json
from contextlib import nullcontext
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.pipeline.decoders import decode_kinesis
from consumer.records import DecodeError, _speedups, decode_destination_record
from consumer.records.batch import RawRecord, ReadBatch
from consumer.records.number import OUT_OF_RANGE
from consumer.records.streams import decode_streams_record
from tests.pipeline_fakes import MemorySink
from tests.unit.test_pipeline_processor import SHARD, pipeline
from tests.unit.test_records_native import assert_same
from tests.unit.test_records_strategies import (
    ITEMS,
    KEYS,
    POSITION,
    compact,
    destination_record,
    python_only,
    serialize,
)

# A value no message may show (the reasons name rules and paths, not item contents).
CANARY = "canary-7f3a"


def record(new: dict[str, Any], keys: dict[str, Any] | None = None) -> dict[str, Any]:
    """An INSERT record (typed JSON as given) whose other values carry the canary."""
    keys = keys if keys is not None else {"pk": {"S": CANARY}}
    return destination_record(keys, {"note": {"S": CANARY}, **new}, None, event_name="INSERT")


def strict_reasons(data: bytes) -> tuple[str, str]:
    """The DecodeError reason with the C path and without it (they must be equal)."""
    reasons = []
    for context in (nullcontext, python_only):
        try:
            with context():
                decode_destination_record(data, POSITION, strict=True)
        except DecodeError as error:
            reasons.append(error.reason)
        else:
            reasons.append("no error")
    return reasons[0], reasons[1]


def lazy_error(data: bytes) -> DecodeError | None:
    """The DecodeError of lazy decoding, at decoding or at the first view asked."""
    try:
        event = decode_destination_record(data, POSITION)
        for image in event.images:
            image.python  # noqa: B018 (evaluated for the error it raises)
    except DecodeError as error:
        return error
    return None


def assert_rejected(data: bytes, reason: str) -> None:
    native, pure = strict_reasons(data)
    assert native == pure
    assert reason in native, native
    assert CANARY not in native
    lazy = lazy_error(data)
    assert lazy is not None and reason in lazy.reason
    assert lazy.position == POSITION and lazy.raw == data  # the DLQ message carries the record
    assert_same(data)


def nested(wrappers: int, leaf: dict[str, Any], kind: str = "M") -> dict[str, Any]:
    value = leaf
    for level in range(wrappers):
        use_map = kind == "M" or (kind == "mixed" and level % 2)
        value = {"M": {"m": value}} if use_map else {"L": [value]}
    return value


# --- sets ---------------------------------------------------------------------------------

EMPTY_AND_REPEATED_SETS = [
    ({"s": {"SS": []}}, "NewImage['s']: a set (SS) must have at least one member"),
    ({"s": {"NS": []}}, "NewImage['s']: a set (NS) must have at least one member"),
    ({"s": {"BS": []}}, "NewImage['s']: a set (BS) must have at least one member"),
    ({"s": {"SS": ["a", CANARY, CANARY]}}, "NewImage['s'][2]: SS members must not repeat"),
    ({"s": {"NS": ["1", "2", "1.0"]}}, "NewImage['s'][2]: NS members must not repeat"),
    ({"s": {"NS": ["-0", "0E+5"]}}, "NewImage['s'][1]: NS members must not repeat"),
    ({"s": {"BS": ["AQ==", "AQ=="]}}, "NewImage['s'][1]: BS members must not repeat"),
    ({"m": {"M": {"s": {"SS": []}}}}, "NewImage['m']['s']: a set (SS) must have"),
    ({"l": {"L": [{"NULL": True}, {"NS": ["7", "7"]}]}}, "NewImage['l'][1][1]: NS members"),
]


@pytest.mark.parametrize(("new", "reason"), EMPTY_AND_REPEATED_SETS)
def test_empty_sets_and_repeated_members_are_rejected(new: dict[str, Any], reason: str) -> None:
    assert_rejected(compact(record(new)), reason)


def test_sets_with_empty_members_are_valid() -> None:
    # "empty string and binary values are allowed within a set"
    data = compact(record({"ss": {"SS": ["", "a"]}, "bs": {"BS": ["", "AQ=="]}}))
    event = decode_destination_record(data, POSITION, strict=True)
    assert event.new_image is not None
    assert event.new_image.python["ss"] == {"", "a"}
    assert event.new_image.python["bs"] == {b"", b"\x01"}
    assert_same(data)


# --- key attributes -----------------------------------------------------------------------

BAD_KEYS = [
    ({"pk": {"M": {"a": {"S": CANARY}}}}, "Keys['pk']: a key attribute must be of type S, N or B"),
    ({"pk": {"L": [{"S": CANARY}]}}, "not L"),
    ({"pk": {"SS": [CANARY]}}, "not SS"),
    ({"pk": {"BOOL": True}}, "not BOOL"),
    ({"pk": {"NULL": True}}, "not NULL"),
    ({"pk": {"S": "a"}, "sk": {"NS": ["1"]}}, "Keys['sk']: a key attribute must be of type"),
    ({"pk": {"Q": CANARY}}, "not an unknown type tag"),
    ({"pk": {"S": CANARY, "N": "1"}}, "Keys['pk']: a key attribute must be one S, N or B value"),
    ({"a": {"S": "1"}, "b": {"S": "2"}, "c": {"S": "3"}}, "Keys has 3 attributes"),
]


@pytest.mark.parametrize(("keys", "reason"), BAD_KEYS)
def test_key_attributes_must_be_one_or_two_s_n_or_b(keys: dict[str, Any], reason: str) -> None:
    data = compact(record({}, keys))
    assert_rejected(data, reason)
    # The key rules are checked at decoding, lazily too: every sink keys by them.
    with pytest.raises(DecodeError, match="Keys"):
        decode_destination_record(data, POSITION)


def test_keys_of_each_key_type_are_valid() -> None:
    keys = {"pk": {"B": "AQ=="}, "sk": {"N": "-1.5E+125"}}
    data = compact(record({}, keys))
    event = decode_destination_record(data, POSITION, strict=True)
    assert event.keys.wire == keys
    assert_same(data)


def test_streams_records_follow_the_key_rules_too() -> None:
    body = {
        "ApproximateCreationDateTime": 1720046486,
        "Keys": {"pk": {"M": {}}},
        "SequenceNumber": "100",
        "SizeBytes": 10,
        "StreamViewType": "KEYS_ONLY",
    }
    raw = {"eventID": "e", "eventName": "REMOVE", "awsRegion": "us-east-1", "dynamodb": body}
    with pytest.raises(DecodeError, match=r"Keys\['pk'\]: a key attribute must be of type"):
        decode_streams_record(raw, "arn:aws:dynamodb:us-east-1:1:table/t/stream/x")


# --- numbers ------------------------------------------------------------------------------

NUMBERS_OUTSIDE = [
    "1E+126",  # boto3's context (Emax=126) accepts it; DynamoDB's range ends below
    "-1E+126",
    "9.99E+126",
    "1E-131",  # boto3's context accepts down to 1E-165
    "-1E-131",
    "1E-160",
    "0.1E-130",
    "1" * 39,  # 39 significant digits
    "1." + "1" * 38,
]
NUMBERS_INSIDE = [
    "9." + "9" * 37 + "E+125",  # the largest
    "-9." + "9" * 37 + "E+125",
    "1E-130",  # the smallest magnitude
    "-1E-130",
    "1." + "2" * 37 + "E-130",  # 38 digits at the bottom of the range
    "1" * 38,
    "0",
    "-0",
]


@pytest.mark.parametrize("number", NUMBERS_OUTSIDE)
def test_numbers_outside_dynamodbs_range_are_rejected(number: str) -> None:
    data = compact(record({"n": {"L": [{"N": "1"}, {"N": number}]}}))
    assert_rejected(data, "NewImage['n'][1]: not a DynamoDB number")
    native, _ = strict_reasons(data)
    assert native == f"NewImage['n'][1]: {OUT_OF_RANGE}"  # the rule, not the number
    data = compact(record({"ns": {"NS": ["1", number]}}))
    assert_rejected(data, "NewImage['ns'][1]: not a DynamoDB number")


@pytest.mark.parametrize("number", NUMBERS_INSIDE)
def test_numbers_at_the_edges_of_the_range_are_exact(number: str) -> None:
    data = compact(record({"n": {"N": number}, "ns": {"NS": [number]}}))
    for context in (nullcontext, python_only):
        with context():
            event = decode_destination_record(data, POSITION, strict=True)
            assert event.new_image is not None
            assert str(event.new_image.python["n"]) == str(Decimal(number))
            assert event.new_image.json["n"].literal == number
    assert_same(data)


# --- nesting ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["M", "L", "mixed"])
def test_values_nest_at_most_32_levels(kind: str) -> None:
    deepest = compact(record({"deep": nested(31, {"S": CANARY}, kind)}))
    event = decode_destination_record(deepest, POSITION, strict=True)
    assert event.new_image is not None
    assert event.new_image.python["deep"] is not None
    assert _speedups.parse_change(deepest) is not None  # the C path reads it itself
    assert_same(deepest)
    too_deep = compact(record({"deep": nested(32, {"S": CANARY}, kind)}))
    assert_rejected(too_deep, "nested deeper than DynamoDB's 32 levels")
    assert _speedups.parse_change(too_deep) is None  # left to the Python path, which names it


def test_an_empty_container_at_level_32_is_valid() -> None:
    data = compact(record({"deep": nested(31, {"M": {}})}))
    assert decode_destination_record(data, POSITION, strict=True).new_image is not None
    assert_same(data)


def test_every_view_applies_the_nesting_rule() -> None:
    data = compact(record({"deep": nested(40, {"S": "x"}, "mixed")}))
    event = decode_destination_record(data, POSITION)
    assert event.new_image is not None
    for view in ("python", "json", "client"):
        with pytest.raises(DecodeError, match=r"NewImage\['deep'\].*: nested deeper"):
            getattr(event.new_image, view)


# --- repeated keys ------------------------------------------------------------------------


def with_text(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, old
    return data.replace(old, new)


BASE = compact(record({"a": {"S": "x"}, "m": {"M": {"b": {"N": "1"}}}}))
REPEATS = [
    (
        with_text(BASE, b'"eventID":', b'"dynamodb":{"Keys":{"pk":{"S":"other"}}},"eventID":'),
        "the record repeats the key 'dynamodb'",
    ),
    (
        with_text(BASE, b'"eventID":', b'"eventName":"REMOVE","eventID":'),
        "the record repeats the key 'eventName'",
    ),
    (
        with_text(BASE, b'"SizeBytes":', b'"Keys":{"pk":{"S":"other"}},"SizeBytes":'),
        "dynamodb repeats the key 'Keys'",
    ),
    (
        with_text(BASE, b'"SizeBytes":', b'"NewImage":{"a":{"S":"y"}},"SizeBytes":'),
        "dynamodb repeats the key 'NewImage'",
    ),
    (
        with_text(BASE, b'{"pk":{"S":', b'{"pk":{"S":"other"},"pk":{"S":'),
        "Keys: repeats the attribute name 'pk'",
    ),
    (
        with_text(BASE, b'"a":{"S":"x"}', b'"a":{"S":"x"},"a":{"S":"' + CANARY.encode() + b'"}'),
        "NewImage: repeats the attribute name 'a'",
    ),
    (
        with_text(BASE, b'"a":{"S":"x"}', b'"a":{"S":"x","S":"y"}'),
        "NewImage['a']: repeats the type tag 'S'",
    ),
    (
        with_text(BASE, b'{"b":{"N":"1"}}', b'{"b":{"N":"1"},"b":{"N":"2"}}'),
        "NewImage['m']: repeats the attribute name 'b'",
    ),
    (
        with_text(BASE, b'"userIdentity":null', b'"userIdentity":{"type":"U","type":"Service"}'),
        "userIdentity repeats the key 'type'",
    ),
]


@pytest.mark.parametrize(("data", "reason"), REPEATS, ids=[reason for _, reason in REPEATS])
def test_a_repeated_key_anywhere_is_rejected_the_same_way(data: bytes, reason: str) -> None:
    # json.loads keeps the last of repeated keys: the record is still JSON, just ambiguous.
    json.loads(data)
    assert_rejected(data, reason)


@pytest.mark.parametrize(("data", "reason"), REPEATS[:5], ids=[r for _, r in REPEATS[:5]])
def test_a_repeated_envelope_key_is_an_error_at_decoding(data: bytes, reason: str) -> None:
    """Issue 20.1: simdjson (the envelope path) read the first `dynamodb`, orjson (the images)
    the last: a KeyError, or a change built from two different records."""
    for strict in (False, True):
        with pytest.raises(DecodeError) as raised:
            decode_destination_record(data, POSITION, strict=strict)
        assert reason in raised.value.reason
    assert _speedups.parse_json(data) is None


def test_a_repeated_key_in_a_streams_record_is_rejected() -> None:
    raw = {
        "eventID": "e",
        "eventName": "REMOVE",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1720046486,
            "Keys": {"pk": {"S": "k"}},
            "SequenceNumber": "100",
        },
    }
    data = with_text(orjson.dumps(raw), b'"eventID":"e"', b'"eventID":"e","eventID":"f"')
    with pytest.raises(DecodeError, match="the record repeats the key 'eventID'"):
        decode_streams_record(data, "arn:aws:dynamodb:us-east-1:1:table/t/stream/x")


def test_unknown_envelope_members_are_not_mistaken_for_repeats() -> None:
    # A member the envelope path does not read sends the record to the full path, which
    # decodes it as before: only a repeated key is an error.
    changed = copy.deepcopy(record({}))
    changed["futureField"] = {"x": 1}
    changed["dynamodb"]["FutureField"] = 2
    event = decode_destination_record(compact(changed), POSITION)
    assert event.keys.wire == {"pk": {"S": CANARY}}
    assert_same(compact(changed))


# --- both paths on generated records, broken at random ------------------------------------

BREAKS: list[tuple[str, Any]] = [
    ("empty set", lambda image: image.update(zz={"SS": []})),
    ("repeated member", lambda image: image.update(zz={"NS": ["5", "5.00"]})),
    ("too deep", lambda image: image.update(zz=nested(32, {"BOOL": True}, "mixed"))),
    ("too large", lambda image: image.update(zz={"N": "1E+126"})),
    ("too small", lambda image: image.update(zz={"N": "1E-131"})),
    ("39 digits", lambda image: image.update(zz={"N": "9" * 39})),
]
BREAK_REASONS = {
    "empty set": "at least one member",
    "repeated member": "members must not repeat",
    "too deep": "nested deeper than DynamoDB's 32 levels",
    "too large": "not a DynamoDB number",
    "too small": "not a DynamoDB number",
    "39 digits": "not a DynamoDB number",
    "key type": "a key attribute must be",
    "repeated attribute": "repeats the attribute name",
    "repeated envelope key": "repeats the key",
}


@st.composite
def broken_records(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A generated MODIFY record, valid or broken by one rule (which one is returned)."""
    keys, new, old = serialize(draw(KEYS)), serialize(draw(ITEMS)), serialize(draw(ITEMS))
    rule = draw(st.sampled_from([None, *[name for name, _ in BREAKS], *list(BREAK_REASONS)[6:]]))
    for name, damage in BREAKS:
        if name == rule:
            damage(draw(st.sampled_from([new, old])))
    if rule == "key type":
        keys[next(iter(keys))] = draw(st.sampled_from([{"M": {}}, {"L": []}, {"NULL": True}]))
    if rule == "repeated attribute":
        new["__twice__"] = {"S": "__twice__"}
    data = compact(destination_record(keys, new, old))
    if rule == "repeated attribute":
        twice = b'"__twice__":{"S":"__twice__"}'
        data = with_text(data, twice, twice + b"," + twice.replace(b'S":"_', b'S":"2_'))
    elif rule == "repeated envelope key":
        data = b'{"tableName":"Other",' + data.removeprefix(b"{")
    return data, rule


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_records())
def test_both_paths_agree_on_good_and_broken_records(case: tuple[bytes, str | None]) -> None:
    data, rule = case
    outcome = assert_same(data)  # strict and lazy, with the C path and without: the same
    if rule is None:
        assert outcome[0] == "event"
    else:
        assert outcome[0] == "error"
        assert BREAK_REASONS[rule] in outcome[1], (rule, outcome[1])


# --- the pipeline parks them --------------------------------------------------------------


async def test_the_pipeline_parks_rule_breaking_records_as_decode_errors() -> None:
    good = compact(record({}))
    bad_keys = compact(record({}, {"pk": {"M": {}}}))
    repeated = REPEATS[0][0]
    records = [
        RawRecord(data, str(n), 0, "pk") for n, data in enumerate([good, bad_keys, repeated, good])
    ]
    for raw in records[1:3]:
        assert isinstance(decode_kinesis(raw, "stream", SHARD)[0], DecodeError)
    sink = MemorySink()
    shard, dlq, checkpoints = pipeline([sink])
    await shard.process(ReadBatch(SHARD, records, 0, "3"))
    assert [(p.pipeline, p.sequence_number, p.error_type) for p in dlq.parked] == [
        ("decode", "1", "DecodeError"),
        ("decode", "2", "DecodeError"),
    ]
    assert "Keys['pk']: a key attribute must be of type S, N or B" in dlq.parked[0].error
    assert "the record repeats the key 'dynamodb'" in dlq.parked[1].error
    assert all(CANARY not in parked.error for parked in dlq.parked)
    assert dlq.parked[1].raw == repeated
    assert len(sink.applied) == 2
    assert checkpoints.checkpoints == [("3", 0)]
