"""Search documents: ids from item keys, bodies with exact numbers, newest change per key."""

from __future__ import annotations

import base64
from decimal import Decimal

import orjson
from hypothesis import given
from hypothesis import strategies as st

from consumer.pipeline.search.document import (
    MAX_READABLE_ID,
    canonical_number,
    document_id,
    document_source,
    plan_writes,
)
from consumer.records import (
    ChangeEvent,
    Image,
    RecordPosition,
    decode_destination_record,
    to_json_bytes,
)
from tests.change_factory import change, destination_record, insert, remove, upsert

POSITION = RecordPosition("stream", "shardId-000000000000", "1")


def keys(wire: dict[str, object]) -> Image:
    return Image(wire, POSITION, "Keys")


def lenient(event_name: str, key: str, new: dict[str, object]) -> ChangeEvent:
    """A change decoded without strict checks: a bad image fails only when a view is read."""
    record = destination_record(event_name, key, 1_000, new=new)
    return decode_destination_record(orjson.dumps(record), POSITION)


def test_document_id_of_a_string_key_is_the_string() -> None:
    assert document_id(keys({"pk": {"S": "order-1"}})) == "order-1"


def test_document_id_joins_key_values_in_attribute_name_order() -> None:
    forward = keys({"pk": {"S": "a"}, "sk": {"N": "7"}})
    backward = keys({"sk": {"N": "7"}, "pk": {"S": "a"}})
    assert document_id(forward) == document_id(backward) == "a~7"


def test_document_id_escapes_everything_but_unreserved_characters() -> None:
    assert document_id(keys({"pk": {"S": "a b/c~d%é"}})) == "a%20b%2Fc%7Ed%25%C3%A9"
    # The separator never occurs inside a value, so different splits give different ids.
    assert document_id(keys({"a": {"S": "x~y"}, "b": {"S": "z"}})) != document_id(
        keys({"a": {"S": "x"}, "b": {"S": "y~z"}})
    )


def test_document_id_of_a_number_is_canonical() -> None:
    ids = {document_id(keys({"pk": {"N": text}})) for text in ("10", "10.0", "1E+1", "1.00e1")}
    assert ids == {"10"}
    assert canonical_number(Decimal("0.00")) == canonical_number(Decimal("-0")) == "0"
    assert canonical_number(Decimal("1.50")) == "1.5"
    assert canonical_number(Decimal("1.2E+3")) == "1200"
    assert canonical_number(Decimal("1E+39")) == "1" + "0" * 39  # up to 40 digits: plain
    assert canonical_number(Decimal("1E+50")) == "1E+50"
    assert canonical_number(Decimal("1E+125")) == "1E+125"
    assert canonical_number(Decimal("-1E-130")) == "-1E-130"


def test_document_id_of_a_binary_key_is_unpadded_base64url() -> None:
    data = bytes([0xFB, 0xFF, 0x00])
    wire = base64.b64encode(data).decode()
    assert document_id(keys({"pk": {"B": wire}})) == "-_8A"
    # boto3's DynamoDB Streams client gives bytes: the same id.
    assert document_id(keys({"pk": {"B": data}})) == "-_8A"


def test_long_keys_get_a_hashed_id_within_opensearch_limits() -> None:
    long_key = "x" * 2000
    doc_id = document_id(keys({"pk": {"S": long_key}}))
    assert len(doc_id.encode()) <= 512
    assert "~~" in doc_id and doc_id.startswith("xxx")
    other = document_id(keys({"pk": {"S": long_key[:-1] + "y"}}))
    assert other != doc_id
    assert len(document_id(keys({"pk": {"S": "x" * MAX_READABLE_ID}}))) == MAX_READABLE_ID


key_values = st.one_of(
    st.text(min_size=1, max_size=40).map(lambda s: {"S": s}),
    st.integers(-(10**20), 10**20).map(lambda n: {"N": str(n)}),
    st.binary(min_size=1, max_size=20).map(lambda b: {"B": base64.b64encode(b).decode()}),
)


@given(st.tuples(key_values, key_values), st.tuples(key_values, key_values))
def test_document_ids_are_equal_exactly_when_keys_are(
    first: tuple[dict[str, str], dict[str, str]], second: tuple[dict[str, str], dict[str, str]]
) -> None:
    a = keys({"pk": first[0], "sk": first[1]})
    b = keys({"pk": second[0], "sk": second[1]})
    same_key = a.python == b.python and [type(v) for v in a.python.values()] == [
        type(v) for v in b.python.values()
    ]
    if same_key:
        assert document_id(a) == document_id(b)
    elif all(type(x) is type(y) for x, y in zip(a.python.values(), b.python.values(), strict=True)):
        # One table's keys always have the same types: then different keys, different ids.
        assert document_id(a) != document_id(b)
    doc_id = document_id(a)
    assert doc_id.isascii() and " " not in doc_id and "/" not in doc_id


def test_document_source_holds_the_new_image_with_exact_numbers() -> None:
    big = "12345678901234567890123456789012345678"
    event = change("INSERT", "k", 1_700_000_000_123_456, new={"n": {"N": big}, "f": {"N": "0.10"}})
    source = document_source(event)
    assert source["deleted"] is False
    assert source["keys"] == {"pk": "k"}
    assert source["change"]["version"] == 1_700_000_000_123_456
    assert source["change"]["created_at"] == "2023-11-14T22:13:20.123456Z"
    body = to_json_bytes(source)
    assert f'"n":{big}'.encode() in body and b'"f":0.10' in body
    assert orjson.loads(body)["item"]["pk"] == "k"


def test_a_remove_becomes_a_tombstone_without_the_item() -> None:
    source = document_source(remove("k", 5_000))
    assert source["deleted"] is True
    assert "item" not in source
    assert source["keys"] == {"pk": "k"}
    assert source["change"]["event_name"] == "REMOVE"


def test_plan_keeps_only_the_newest_change_per_document() -> None:
    events = [
        insert("a", 1_000, 1),
        upsert("b", 5_000, 5),
        upsert("a", 3_000, 3),
        upsert("a", 2_000, 2),
        remove("b", 4_000),
    ]
    plan = plan_writes(events)
    assert plan.failures == {}
    assert [(w.index, w.doc_id, w.version) for w in plan.writes] == [
        (1, "b", 5_000),
        (2, "a", 3_000),
    ]


def test_plan_breaks_version_ties_by_batch_order() -> None:
    first, second = upsert("a", 1_000, 1), upsert("a", 1_000, 2)
    (write,) = plan_writes([first, second]).writes
    assert write.index == 1


def test_plan_reports_changes_that_cannot_become_documents() -> None:
    no_image = change("MODIFY", "a", 1_000)  # a KEYS_ONLY stream: no NewImage
    bad_number = lenient("INSERT", "b", {"n": {"N": "not a number"}})
    plan = plan_writes([no_image, bad_number, insert("c", 1_000, 1)])
    assert [w.doc_id for w in plan.writes] == ["c"]
    assert set(plan.failures) == {0, 1}
    assert not any(error.retryable for error in plan.failures.values())
    assert "NewImage" in str(plan.failures[0])
