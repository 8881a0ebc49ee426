"""Kinesis destination records: the AWS samples, lazy (envelope) versus strict decoding,
every kind of bad record, both base64 layers, and KPL aggregates."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import botocore.session
import orjson
import pytest
from botocore.parsers import create_parser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.records import (
    ChangeEvent,
    DecodeError,
    EventName,
    RecordPosition,
    aggregate,
    decode_destination_record,
    decode_kinesis_data,
    decode_kinesis_record,
    kinesis_position,
)
from consumer.records.event import new_event
from consumer.records.timestamps import datetime_from_us
from tests.unit.test_records_strategies import (
    ITEMS,
    KEYS,
    POSITION,
    compact,
    damaged,
    deserialize,
    destination_record,
    serialize,
)

EVENTS = Path(__file__).parent.parent / "events"
DOC_RECORDS: list[dict[str, Any]] = json.loads(
    (EVENTS / "kinesis_destination_records.json").read_text()
)
ALL_TYPES: dict[str, Any] = json.loads((EVENTS / "kinesis_destination_all_types.json").read_text())


def decode_both(data: bytes) -> ChangeEvent:
    """Decode lazily and strictly; both must give the same event."""
    lazy = decode_destination_record(data, POSITION)
    strict = decode_destination_record(data, POSITION, strict=True)
    assert lazy == strict
    return lazy


# --- the AWS documentation samples --------------------------------------------------------


def test_documentation_insert_record() -> None:
    event = decode_both(compact(DOC_RECORDS[0]))
    assert event.event_id == "a5d6b5e0-5b52-4b1f-8b4d-6d1c3c5f9a01"
    assert event.event_name is EventName.INSERT
    assert event.table == "Music"
    assert event.region == "us-east-1"
    assert event.keys.python == {"Artist": "No One You Know", "SongTitle": "Call Me Today"}
    assert event.new_image is not None
    assert event.new_image.python["Awards"] == Decimal(1)
    assert event.old_image is None
    # No precision field: the original format, milliseconds.
    assert event.created_at_us == 1606156283612000
    created_at = datetime_from_us(event.created_at_us)
    assert created_at == datetime(2020, 11, 23, 18, 31, 23, 612000, tzinfo=UTC)
    assert event.ttl_delete is False
    assert event.size == 112
    assert event.position == POSITION


def test_documentation_modify_record_with_microsecond_precision() -> None:
    event = decode_both(compact(DOC_RECORDS[1]))
    assert event.event_name is EventName.MODIFY
    assert event.created_at_us == 1720046486486729
    assert datetime_from_us(event.created_at_us).microsecond == 486729
    assert event.new_image is not None
    assert event.old_image is not None
    assert event.new_image.python["AlbumTitle"] == "Updated Album Title"
    assert event.old_image.python["AlbumTitle"] == "Somewhat Famous"
    assert event.version == event.created_at_us
    assert event.position.sequence_key == (int(POSITION.sequence_number), 0)


def test_documentation_remove_records_user_and_ttl() -> None:
    user = decode_both(compact(DOC_RECORDS[2]))
    assert user.event_name is EventName.REMOVE
    assert user.new_image is None
    assert user.old_image is not None
    assert user.created_at_us == 1720046587215000  # MILLISECOND
    assert user.ttl_delete is False
    ttl = decode_both(compact(DOC_RECORDS[3]))
    assert ttl.ttl_delete is True
    assert ttl.table == "Sessions"


def test_pretty_printed_records_decode_the_same() -> None:
    for record in DOC_RECORDS:
        pretty = json.dumps(record, indent=2).encode()
        event = decode_both(pretty)
        reference = decode_both(compact(record))
        assert (event.event_id, event.keys, event.new_image, event.old_image) == (
            reference.event_id,
            reference.keys,
            reference.new_image,
            reference.old_image,
        )
        assert event.created_at_us == reference.created_at_us


def test_all_types_sample() -> None:
    event = decode_both(compact(ALL_TYPES))
    assert event.new_image is not None
    python = event.new_image.python
    assert python["name"] == "Grüße, 世界 🌍"
    assert python["empty"] == ""
    assert python["price"] == Decimal("1.50")
    assert str(python["tiny"]) == "1E-130"
    assert python["blob"] == b"\x00\x01\x02\xff"
    assert python["emptyBlob"] == b""
    assert python["tags"] == {"red", "green", ""}
    assert python["scores"] == {Decimal(1), Decimal("2.5"), Decimal("-3E+10")}
    assert python["blobs"] == {b"\x01", b"\x02\x03"}
    assert python["list"] == ["a", Decimal(1), [True], {"x": None}]
    assert python["map"] == {"nested": {"deeper": "yes", "blob": b"\xff"}, "n": Decimal(0)}
    assert python == deserialize(binaries_as_bytes(ALL_TYPES["dynamodb"]["NewImage"]))


def binaries_as_bytes(value: Any) -> Any:
    """Typed JSON with base64 text turned into bytes, as boto3's TypeDeserializer wants."""
    if isinstance(value, dict):
        if set(value) == {"B"}:
            return {"B": base64.b64decode(value["B"])}
        if set(value) == {"BS"}:
            return {"BS": [base64.b64decode(member) for member in value["BS"]]}
        return {key: binaries_as_bytes(member) for key, member in value.items()}
    if isinstance(value, list):
        return [binaries_as_bytes(member) for member in value]
    return value


# --- envelope-only and strict decoding --------------------------------------------------


def test_envelope_decoding_keeps_images_as_received_until_a_view_is_asked() -> None:
    event = decode_destination_record(compact(DOC_RECORDS[1]), POSITION)
    assert event.new_image is not None
    assert event.new_image.wire is not None
    assert event.new_image._python is None  # not converted yet
    assert event.new_image.wire == DOC_RECORDS[1]["dynamodb"]["NewImage"]
    assert event.new_image.python["Awards"] == Decimal(10)
    assert event.new_image._python is not None


@st.composite
def adversarial_records(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """A destination record in any key order and formatting, with attribute names and
    values that collide with the record's own keys and JSON syntax."""
    keys, new, old = serialize(draw(KEYS)), serialize(draw(ITEMS)), serialize(draw(ITEMS))
    name = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]))
    new_kind = draw(st.sampled_from(["image", "absent", "null"]))
    old_kind = draw(st.sampled_from(["image", "absent", "null"]))
    record = destination_record(keys, new, old, event_name=name)
    body = record["dynamodb"]
    for label, kind in (("NewImage", new_kind), ("OldImage", old_kind)):
        if kind == "absent":
            del body[label]
        elif kind == "null":
            body[label] = None
    if draw(st.booleans()):  # members no decoder reads, as a future format might add
        body["Future"] = draw(st.sampled_from([{"x": 1}, [1, {"y": "}"}], "text", 5, None]))
        record["futureField"] = {"nested": {"a": 1}}
    shuffle = random.Random(draw(st.integers(0, 2**32)))
    body_items = list(body.items())
    shuffle.shuffle(body_items)
    record["dynamodb"] = dict(body_items)
    record_items = list(record.items())
    shuffle.shuffle(record_items)
    record = dict(record_items)
    style = draw(st.sampled_from(["compact", "indent", "spaces", "ascii"]))
    if style == "compact":
        data = orjson.dumps(record)
    elif style == "indent":
        data = json.dumps(record, indent=1, ensure_ascii=False).encode()
    elif style == "spaces":
        data = json.dumps(record, ensure_ascii=False).encode()
    else:
        data = json.dumps(record, separators=(",", ":")).encode()  # \u escapes
    return data, record


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(adversarial_records())
def test_any_layout_decodes_to_the_record_it_encodes(case: tuple[bytes, dict[str, Any]]) -> None:
    data, record = case
    lazy = decode_destination_record(data, POSITION)
    strict = decode_destination_record(data, POSITION, strict=True)
    assert lazy == strict
    body = record["dynamodb"]
    assert lazy.keys.wire == body["Keys"]
    for view, label in ((lazy.new_image, "NewImage"), (lazy.old_image, "OldImage")):
        if body.get(label) is None:
            assert view is None
        else:
            assert view is not None
            assert view.wire == body[label]
            assert view.python == strict_image(strict, label).python
    assert lazy.size == body["SizeBytes"]
    assert lazy.created_at_us == body["ApproximateCreationDateTime"]


def strict_image(event: ChangeEvent, label: str) -> Any:
    return event.new_image if label == "NewImage" else event.old_image


def test_attribute_names_that_collide_with_record_keys() -> None:
    # Found by the property test above against an earlier text-cutting fast path.
    old = {"": {"L": []}, "NewImage": {"N": "0"}, "SizeBytes": {"S": "}"}}
    record = destination_record({"k": {"S": "1"}}, None, old, event_name="REMOVE")
    event = decode_both(compact(record))
    assert event.new_image is None
    assert event.old_image is not None
    assert event.old_image.python == {"": [], "NewImage": Decimal(0), "SizeBytes": "}"}
    assert event.size == 321


def test_unknown_members_are_ignored() -> None:
    record = destination_record({"k": {"S": "1"}}, {"a": {"S": "x"}}, None)
    body = record["dynamodb"]
    record["dynamodb"] = {"Keys": body["Keys"], "NewImage": body["NewImage"], "Future": {"x": 1}}
    record["dynamodb"].update({k: v for k, v in body.items() if k not in record["dynamodb"]})
    event = decode_both(compact(record))
    assert event.new_image is not None
    assert event.new_image.wire == {"a": {"S": "x"}}


def test_invalid_attribute_values_surface_lazily_or_strictly() -> None:
    record = copy.deepcopy(DOC_RECORDS[1])
    record["dynamodb"]["OldImage"]["Awards"] = {"N": "ten"}
    data = compact(record)
    event = decode_destination_record(data, POSITION)
    assert event.old_image is not None
    assert event.old_image.wire["Awards"] == {"N": "ten"}
    with pytest.raises(DecodeError, match=r"OldImage\['Awards'\]"):
        event.old_image.python  # noqa: B018 (evaluated for the error it raises)
    with pytest.raises(DecodeError, match=r"OldImage\['Awards'\]"):
        event.old_image.json  # noqa: B018 (evaluated for the error it raises)
    with pytest.raises(DecodeError, match=r"OldImage\['Awards'\]"):
        decode_destination_record(data, POSITION, strict=True)


# --- bad records --------------------------------------------------------------------------


def mutated(change: Any) -> bytes:
    record = copy.deepcopy(DOC_RECORDS[1])
    change(record)
    return compact(record)


BAD_RECORDS: list[tuple[str, bytes, str]] = [
    ("not json", b"not json", "not JSON"),
    ("empty", b"", "not JSON"),
    ("truncated", compact(DOC_RECORDS[1])[:-1], "not JSON"),
    ("invalid utf-8", b'{"eventID":"\xff"}', "not JSON"),
    ("array", b"[1,2]", "not a DynamoDB change record"),
    ("string", b'"INSERT"', "not a DynamoDB change record"),
    ("no dynamodb", mutated(lambda r: r.pop("dynamodb")), "dynamodb is missing"),
    ("dynamodb array", mutated(lambda r: r.update(dynamodb=[])), "dynamodb is an array"),
    ("no eventID", mutated(lambda r: r.pop("eventID")), "eventID is missing"),
    ("numeric eventID", mutated(lambda r: r.update(eventID=7)), "eventID is a number"),
    ("no tableName", mutated(lambda r: r.pop("tableName")), "tableName is missing"),
    ("no awsRegion", mutated(lambda r: r.pop("awsRegion")), "awsRegion is missing"),
    ("no eventName", mutated(lambda r: r.pop("eventName")), "eventName is missing"),
    ("unknown eventName", mutated(lambda r: r.update(eventName="UPDATE")), "'UPDATE'"),
    ("lowercase eventName", mutated(lambda r: r.update(eventName="insert")), "'insert'"),
    ("list eventName", mutated(lambda r: r.update(eventName=["INSERT"])), "eventName"),
    ("kinesis source", mutated(lambda r: r.update(eventSource="aws:kinesis")), "eventSource"),
    ("identity string", mutated(lambda r: r.update(userIdentity="me")), "userIdentity"),
    ("no keys", mutated(lambda r: r["dynamodb"].pop("Keys")), "Keys is missing"),
    ("empty keys", mutated(lambda r: r["dynamodb"].update(Keys={})), "non-empty object"),
    ("keys array", mutated(lambda r: r["dynamodb"].update(Keys=[])), "Keys"),
    ("image array", mutated(lambda r: r["dynamodb"].update(NewImage=[1])), "NewImage"),
    ("image string", mutated(lambda r: r["dynamodb"].update(OldImage="x")), "OldImage"),
    (
        "no creation time",
        mutated(lambda r: r["dynamodb"].pop("ApproximateCreationDateTime")),
        "a time must be a number",
    ),
    (
        "text creation time",
        mutated(lambda r: r["dynamodb"].update(ApproximateCreationDateTime="soon")),
        "not a number",
    ),
    (
        "negative creation time",
        mutated(lambda r: r["dynamodb"].update(ApproximateCreationDateTime=-5)),
        "out of range",
    ),
    (
        "huge creation time",
        mutated(lambda r: r["dynamodb"].update(ApproximateCreationDateTime=10**18)),
        "out of range",
    ),
    (
        "unknown precision",
        mutated(lambda r: r["dynamodb"].update(ApproximateCreationDateTimePrecision="NANO")),
        "ApproximateCreationDateTimePrecision",
    ),
    ("negative size", mutated(lambda r: r["dynamodb"].update(SizeBytes=-1)), "SizeBytes"),
    ("text size", mutated(lambda r: r["dynamodb"].update(SizeBytes="12")), "SizeBytes"),
]


@pytest.mark.parametrize(
    ("data", "reason"),
    [(d, r) for _, d, r in BAD_RECORDS],
    ids=[name for name, _, _ in BAD_RECORDS],
)
def test_bad_records_raise_one_typed_error_with_the_position(data: bytes, reason: str) -> None:
    for strict in (False, True):
        with pytest.raises(DecodeError) as raised:
            decode_destination_record(data, POSITION, strict=strict)
        assert reason in raised.value.reason
        assert raised.value.position == POSITION
        assert raised.value.raw == data
        assert str(POSITION) in str(raised.value)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_arbitrary_damage_gives_an_event_or_a_decode_error(data: st.DataObject) -> None:
    payload = damaged(data, compact(ALL_TYPES if data.draw(st.booleans()) else DOC_RECORDS[1]))
    for strict in (False, True):
        outcome = decode_fully(payload, strict=strict)
        assert outcome is None or outcome.position == POSITION


def decode_fully(data: bytes, *, strict: bool) -> DecodeError | None:
    """Decode and ask every view; the DecodeError raised, if any (anything else escapes)."""
    try:
        event = decode_destination_record(data, POSITION, strict=strict)
        for image in event.images:
            image.python  # noqa: B018 (evaluated for the error it raises)
            image.json  # noqa: B018 (evaluated for the error it raises)
            image.client  # noqa: B018 (evaluated for the error it raises)
    except DecodeError as error:
        return error
    return None


def test_deep_json_is_a_decode_error() -> None:
    deep = b'{"L":[' * 600 + b'{"S":"x"}' + b"]}" * 600
    data = compact(DOC_RECORDS[0]).replace(b'{"S":"Somewhat Famous"}', deep)
    for strict in (False, True):
        assert decode_fully(data, strict=strict) is not None


# --- creation time ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "precision", "expected_us"),
    [
        (1720046486486, "MILLISECOND", 1720046486486000),
        (1720046486486729, "MICROSECOND", 1720046486486729),
        (1720046486486, None, 1720046486486000),
        (1720046486486729, None, 1720046486486729),  # too large for milliseconds
        (1720046486486.5, "MILLISECOND", 1720046486486500),
        (0, "MILLISECOND", 0),
    ],
)
def test_creation_time_in_microseconds(
    created: float, precision: str | None, expected_us: int
) -> None:
    record = destination_record({"k": {"S": "1"}}, None, None, created=created, precision=precision)
    assert decode_both(compact(record)).created_at_us == expected_us


# --- Kinesis records, both base64 layers, KPL ---------------------------------------------


def botocore_get_records(body: bytes) -> dict[str, Any]:
    """GetRecords' HTTP response body as boto3 returns it (Data base64-decoded)."""
    model = botocore.session.get_session().get_service_model("kinesis")
    operation = model.operation_model("GetRecords")
    parser = create_parser(model.metadata["protocol"])
    response = {"body": body, "headers": {}, "status_code": 200}
    parsed: dict[str, Any] = parser.parse(response, operation.output_shape)
    return parsed


def test_both_base64_layers_from_a_get_records_response() -> None:
    body = (EVENTS / "kinesis_get_records_response.json").read_bytes()
    raw_records = json.loads(body)["Records"]
    records = botocore_get_records(body)["Records"]
    assert isinstance(records[0]["Data"], bytes)
    assert isinstance(records[0]["ApproximateArrivalTimestamp"], datetime)
    results = [
        result
        for record in records
        for result in decode_kinesis_record(record, "orders", "shardId-000000000000")
    ]
    assert all(isinstance(result, ChangeEvent) for result in results)
    events = [result for result in results if isinstance(result, ChangeEvent)]
    assert [event.event_id for event in events] == [r["eventID"] for r in DOC_RECORDS] + [
        DOC_RECORDS[0]["eventID"],
        DOC_RECORDS[1]["eventID"],
    ]
    for event, record in zip(events, DOC_RECORDS, strict=False):
        assert event == decode_destination_record(compact(record), event.position)
    first = events[0].position
    assert first.stream == "orders"
    assert first.shard_id == "shardId-000000000000"
    assert first.sequence_number == raw_records[0]["SequenceNumber"]
    assert first.sub_sequence_number == 0
    assert first.arrival_ms == 1720046487123
    # The last Kinesis record is a KPL aggregate of two user records.
    aggregated = events[-2:]
    assert [e.position.sub_sequence_number for e in aggregated] == [0, 1]
    assert {e.position.sequence_number for e in aggregated} == {raw_records[-1]["SequenceNumber"]}
    # The raw API's base64 text is accepted as Data too.
    again = decode_kinesis_record(raw_records[0], "orders", "shardId-000000000000")
    assert again == [events[0]]


def test_kinesis_record_without_usable_data() -> None:
    record = {"SequenceNumber": "1", "ApproximateArrivalTimestamp": None}
    [error] = decode_kinesis_record(record, "s", "shard")
    assert isinstance(error, DecodeError)
    assert error.position == RecordPosition("s", "shard", "1")
    [error] = decode_kinesis_record({"SequenceNumber": "1", "Data": "***"}, "s", "shard")
    assert isinstance(error, DecodeError)
    assert "base64" in error.reason
    [error] = decode_kinesis_record({"Data": compact(DOC_RECORDS[0])}, "s", "shard")
    assert isinstance(error, DecodeError)
    assert "SequenceNumber" in error.reason


def test_kinesis_position_from_an_sdk_record() -> None:
    arrival = datetime(2024, 7, 3, 22, 41, 27, 123000, tzinfo=UTC)
    position = kinesis_position(
        {"SequenceNumber": "42", "ApproximateArrivalTimestamp": arrival}, "s", "shard-1"
    )
    assert position == RecordPosition("s", "shard-1", "42", 0, 1720046487123)
    assert position.sequence_key == (42, 0)


def test_one_bad_user_record_in_an_aggregate_does_not_take_its_siblings() -> None:
    payload = aggregate(
        [("a", compact(DOC_RECORDS[0])), ("b", b"garbage"), ("c", compact(DOC_RECORDS[2]))]
    )
    results = decode_kinesis_data(payload, POSITION)
    assert [type(result) for result in results] == [ChangeEvent, DecodeError, ChangeEvent]
    assert [r.position.sub_sequence_number for r in results] == [0, 1, 2]


def test_a_corrupt_aggregate_is_one_decode_error() -> None:
    payload = bytearray(aggregate([("a", compact(DOC_RECORDS[0]))]))
    payload[10] ^= 0xFF
    [error] = decode_kinesis_data(bytes(payload), POSITION)
    assert isinstance(error, DecodeError)
    assert "MD5" in error.reason


def test_a_plain_record_passes_through_as_sub_sequence_zero() -> None:
    [event] = decode_kinesis_data(compact(DOC_RECORDS[0]), POSITION.with_sub_sequence(3))
    assert isinstance(event, ChangeEvent)
    assert event.position.sub_sequence_number == 0


def test_events_are_hashable_and_immutable() -> None:
    event = decode_both(compact(DOC_RECORDS[0]))
    assert hash(event) == hash(decode_destination_record(compact(DOC_RECORDS[0]), POSITION))
    with pytest.raises(AttributeError):
        event.table = "other"  # deliberately: frozen
    assert not hasattr(event, "__dict__")


def test_new_event_builds_the_same_event_as_the_constructor() -> None:
    event = decode_both(compact(DOC_RECORDS[1]))
    values = {
        field.name: getattr(event, field.name)
        for field in dataclasses.fields(event)
        if field.init  # not the record's parse cache (ChangeEvent.record)
    }
    assert ChangeEvent(**values) == event
    assert new_event(*values.values()) == event
    # Every field has its own distinct value here, so a field set from the wrong argument
    # (or not at all) would show.
    assert len({id(value) for value in values.values()}) == len(values)
