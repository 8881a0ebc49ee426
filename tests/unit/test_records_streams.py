"""DynamoDB Streams records: the GetRecords sample (wire JSON and boto3's parsed shape) and
the Lambda event sample, plus bad records."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import botocore.session
import orjson
import pytest
from botocore.parsers import create_parser

from consumer.records import (
    ChangeEvent,
    DecodeError,
    EventName,
    RecordPosition,
    decode_lambda_event,
    decode_lambda_record,
    decode_streams_record,
    table_from_stream_arn,
)
from consumer.records.errors import InvalidRecord
from consumer.records.timestamps import datetime_from_us

EVENTS = Path(__file__).parent.parent / "events"
GET_RECORDS_BODY = (EVENTS / "dynamodb_streams_get_records.json").read_bytes()
LAMBDA_EVENT: dict[str, Any] = json.loads((EVENTS / "lambda_dynamodb_event.json").read_text())
ALL_TYPES: dict[str, Any] = json.loads((EVENTS / "kinesis_destination_all_types.json").read_text())
FORUM_STREAM = "arn:aws:dynamodb:us-west-2:111122223333:table/Forum/stream/2015-05-20T20:51:10.252"
SHARD = "shardId-00000001414576573621-f55eea83"


def boto3_get_records(body: bytes) -> dict[str, Any]:
    """The GetRecords response as boto3 returns it (datetimes, bytes)."""
    model = botocore.session.get_session().get_service_model("dynamodbstreams")
    operation = model.operation_model("GetRecords")
    parser = create_parser(model.metadata["protocol"])
    response = {"body": body, "headers": {}, "status_code": 200}
    parsed: dict[str, Any] = parser.parse(response, operation.output_shape)
    return parsed


def test_get_records_sample_through_boto3() -> None:
    records = boto3_get_records(GET_RECORDS_BODY)["Records"]
    assert isinstance(records[0]["dynamodb"]["ApproximateCreationDateTime"], datetime)
    events = [decode_streams_record(record, FORUM_STREAM, SHARD) for record in records]
    assert [event.event_name for event in events] == [
        EventName.INSERT,
        EventName.MODIFY,
        EventName.REMOVE,
    ]
    first = events[0]
    assert first.table == "Forum"
    assert first.region == "us-west-2"
    assert first.event_id == "e2fd9c34eff2d779b297b26f5fef4206"
    assert first.keys.python == {"ForumName": "DynamoDB", "Subject": "DynamoDB Thread 3"}
    assert first.new_image is None  # KEYS_ONLY
    assert first.old_image is None
    assert first.created_at_us == 1464806460_000000  # seconds, 1.46480646E9
    assert datetime_from_us(first.created_at_us) == datetime(2016, 6, 1, 18, 41, tzinfo=UTC)
    assert first.size == 41
    assert first.position == RecordPosition(FORUM_STREAM, SHARD, "300000000000000499659")
    assert events[1].created_at_us == 1464805270_000000
    # The raw bytes are the record's wire JSON: times back in epoch seconds.
    assert orjson.loads(first.raw)["dynamodb"]["ApproximateCreationDateTime"] == 1464806460


def test_get_records_sample_from_wire_json_gives_the_same_events() -> None:
    wire_records = json.loads(GET_RECORDS_BODY)["Records"]
    sdk_records = boto3_get_records(GET_RECORDS_BODY)["Records"]
    for wire, sdk in zip(wire_records, sdk_records, strict=True):
        from_wire = decode_streams_record(orjson.dumps(wire), FORUM_STREAM, SHARD)
        from_sdk = decode_streams_record(sdk, FORUM_STREAM, SHARD)
        assert from_wire.raw == orjson.dumps(wire)
        assert orjson.loads(from_sdk.raw)["dynamodb"]["Keys"] == wire["dynamodb"]["Keys"]
        for field in ("event_id", "event_name", "table", "region", "keys", "new_image"):
            assert getattr(from_wire, field) == getattr(from_sdk, field)
        assert from_wire.created_at_us == from_sdk.created_at_us
        assert from_wire.position == from_sdk.position


def test_binary_values_from_boto3_are_bytes_and_stay_exact() -> None:
    image = ALL_TYPES["dynamodb"]["NewImage"]
    wire = {
        "Records": [
            {
                "eventID": "1",
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "awsRegion": "eu-central-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1720046486.5,
                    "Keys": ALL_TYPES["dynamodb"]["Keys"],
                    "NewImage": image,
                    "SequenceNumber": "100000000000000000001",
                    "SizeBytes": 400,
                    "StreamViewType": "NEW_IMAGE",
                },
            }
        ]
    }
    [record] = boto3_get_records(orjson.dumps(wire))["Records"]
    new_image = record["dynamodb"]["NewImage"]
    assert new_image["blob"] == {"B": b"\x00\x01\x02\xff"}  # boto3 decoded the base64
    event = decode_streams_record(record, FORUM_STREAM, SHARD, strict=True)
    assert event.new_image is not None
    assert event.new_image.python["blob"] == b"\x00\x01\x02\xff"
    assert event.new_image.python["blobs"] == {b"\x01", b"\x02\x03"}
    assert event.new_image.json["blob"] == "AAEC/w=="
    assert event.new_image.client is event.new_image.wire  # already bytes
    assert event.created_at_us == 1720046486_500000
    # The wire JSON carries base64 again, so raw records survive a JSON round trip.
    assert orjson.loads(event.raw)["dynamodb"]["NewImage"] == image
    from_wire = decode_streams_record(orjson.dumps(wire["Records"][0]), FORUM_STREAM, SHARD)
    assert from_wire.new_image is not None
    assert from_wire.new_image.python == event.new_image.python
    assert from_wire.new_image.json == event.new_image.json


def test_lambda_event_sample() -> None:
    results = decode_lambda_event(LAMBDA_EVENT, strict=True)
    assert all(isinstance(result, ChangeEvent) for result in results)
    insert, modify, remove = (r for r in results if isinstance(r, ChangeEvent))
    assert insert.table == "ExampleTableWithStream"
    assert insert.position.stream == LAMBDA_EVENT["Records"][0]["eventSourceARN"]
    assert insert.position.shard_id == ""
    assert insert.position.sequence_number == "4421584500000000017450439091"
    assert insert.keys.python == {"Id": Decimal(101)}
    assert insert.new_image is not None
    assert insert.new_image.python == {"Message": "New item!", "Id": Decimal(101)}
    assert insert.created_at_us == 1428537600_000000
    assert modify.old_image is not None
    assert modify.old_image.python["Message"] == "New item!"
    assert remove.event_name is EventName.REMOVE
    assert remove.new_image is None
    assert remove.ttl_delete is False
    assert remove.size == 38


def test_lambda_ttl_delete_and_streams_api_identity_spelling() -> None:
    record = copy.deepcopy(LAMBDA_EVENT["Records"][2])
    record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert decode_lambda_record(record).ttl_delete is True
    record["userIdentity"] = {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}
    assert decode_lambda_record(record).ttl_delete is True
    record["userIdentity"] = {"Type": "Service", "PrincipalId": "someone.amazonaws.com"}
    assert decode_lambda_record(record).ttl_delete is False
    insert = copy.deepcopy(LAMBDA_EVENT["Records"][0])
    insert["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert decode_lambda_record(insert).ttl_delete is False  # only a REMOVE is a TTL delete


def test_a_bad_lambda_record_does_not_take_the_batch_with_it() -> None:
    event = copy.deepcopy(LAMBDA_EVENT)
    event["Records"][1]["eventName"] = "UPSERT"
    event["Records"][2]["dynamodb"]["OldImage"]["Id"] = {"N": "one"}
    results = decode_lambda_event(event, strict=True)
    assert isinstance(results[0], ChangeEvent)
    assert isinstance(results[1], DecodeError)
    assert results[1].position.sequence_number == "4421584500000000017450439092"
    assert isinstance(results[2], DecodeError)
    assert "OldImage['Id']" in results[2].reason
    # Without strict the bad image surfaces when asked for.
    lazy = decode_lambda_event(event)
    assert isinstance(lazy[2], ChangeEvent)
    assert lazy[2].old_image is not None
    with pytest.raises(DecodeError):
        lazy[2].old_image.python  # noqa: B018 (evaluated for the error it raises)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({}, "no Records"),
        ({"Records": "x"}, "no Records"),
        ("not a dict", "no Records"),
    ],
)
def test_bad_lambda_events(event: Any, reason: str) -> None:
    [error] = decode_lambda_event(event)
    assert isinstance(error, DecodeError)
    assert reason in error.reason


def test_lambda_record_without_source_arn() -> None:
    record = copy.deepcopy(LAMBDA_EVENT["Records"][0])
    del record["eventSourceARN"]
    with pytest.raises(DecodeError, match="eventSourceARN") as raised:
        decode_lambda_record(record)
    assert raised.value.position.sequence_number == "4421584500000000017450439091"
    [error] = decode_lambda_event({"Records": [42]})
    assert isinstance(error, DecodeError)


def streams_record(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(json.loads(GET_RECORDS_BODY)["Records"][0])
    body_changes = changes.pop("body", {})
    record.update(changes)
    for key, value in body_changes.items():
        if value is None:
            record["dynamodb"].pop(key, None)
        else:
            record["dynamodb"][key] = value
    return record


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "not a DynamoDB change record"),
        (streams_record(dynamodb="x"), "dynamodb is a string"),
        (streams_record(eventName="DELETE"), "'DELETE'"),
        (streams_record(eventSource="aws:s3"), "eventSource"),
        (streams_record(awsRegion=None), "awsRegion"),
        (streams_record(body={"ApproximateCreationDateTime": None}), "is missing"),
        (streams_record(body={"ApproximateCreationDateTime": "later"}), "not a number"),
        (streams_record(body={"ApproximateCreationDateTime": float("nan")}), "out of range"),
        (streams_record(body={"Keys": None}), "Keys"),
        (streams_record(body={"SizeBytes": 1.5}), "SizeBytes"),
        (streams_record(body={"NewImage": []}), "NewImage"),
        (streams_record(body={"SequenceNumber": None}), "SequenceNumber"),
        (streams_record(body={"SequenceNumber": 300}), "SequenceNumber"),
    ],
)
def test_bad_streams_records(record: Any, reason: str) -> None:
    with pytest.raises(DecodeError) as raised:
        decode_streams_record(record, FORUM_STREAM, SHARD)
    assert reason in raised.value.reason
    assert raised.value.position.stream == FORUM_STREAM
    assert raised.value.position.shard_id == SHARD


def test_sequence_number_is_in_the_error_position() -> None:
    with pytest.raises(DecodeError) as raised:
        decode_streams_record(streams_record(eventName="X"), FORUM_STREAM, SHARD)
    assert raised.value.position.sequence_number == "300000000000000499659"
    assert raised.value.raw  # the wire JSON, for the dead-letter queue


def test_table_name_from_the_stream_arn() -> None:
    assert table_from_stream_arn(FORUM_STREAM) == "Forum"
    with pytest.raises(InvalidRecord):
        table_from_stream_arn("arn:aws:kinesis:us-east-1:1:stream/orders")
    with pytest.raises(DecodeError, match="table name"):
        decode_streams_record(streams_record(), "not-an-arn", SHARD)
    event = decode_streams_record(streams_record(), "not-an-arn", SHARD, table="Forum")
    assert event.table == "Forum"


def test_streams_creation_time_shapes() -> None:
    for value, expected in [
        (1464806460, 1464806460_000000),
        (1464806460.25, 1464806460_250000),
        ("1.46480646E9", 1464806460_000000),
        (Decimal("1464806460.000001"), 1464806460_000001),
        (datetime(2016, 6, 1, 18, 41, tzinfo=UTC), 1464806460_000000),
        (datetime(2016, 6, 1, 18, 41), 1464806460_000000),  # naive: UTC
    ]:
        record = streams_record(body={"ApproximateCreationDateTime": value})
        assert decode_streams_record(record, FORUM_STREAM).created_at_us == expected


def test_binary_in_lambda_events_is_base64_text() -> None:
    record = copy.deepcopy(LAMBDA_EVENT["Records"][0])
    record["dynamodb"]["NewImage"]["Blob"] = {"B": base64.b64encode(b"\x00\xff").decode()}
    event = decode_lambda_record(record)
    assert event.new_image is not None
    assert event.new_image.python["Blob"] == b"\x00\xff"
    assert event.new_image.client["Blob"] == {"B": b"\x00\xff"}
    record["dynamodb"]["NewImage"]["Blob"] = {"B": "not base64!"}
    with pytest.raises(DecodeError, match="base64"):
        decode_lambda_record(record, strict=True)
