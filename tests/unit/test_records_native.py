"""The C fast path (consumer/records/_speedups.c) against the pure-Python decoder.

The C code converts regular input only and hands everything else back to the Python path, so
the contract is simple: for any input, strict decoding with the C path gives exactly what it
gives without it, the same event with the same views, or a DecodeError with the same reason.
These tests check that on generated records, on damaged records, and on the cases where a
hand-written JSON parser goes wrong (escapes, surrogates, duplicate keys, whitespace, numbers).
"""

from __future__ import annotations

import copy
import json
import sys
import tracemalloc
from collections.abc import Callable
from contextlib import suppress
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.records import (
    DecodeError,
    _speedups,
    attribute,
    decode_destination_record,
    kinesis,
)
from consumer.records.attribute import (
    item_to_client,
    item_to_json,
    item_to_python,
    item_to_python_sharing,
)
from tests.unit.test_records_kinesis import ALL_TYPES, DOC_RECORDS, adversarial_records
from tests.unit.test_records_strategies import (
    INSERTIONS,
    ITEMS,
    KEYS,
    POSITION,
    base64_binaries,
    compact,
    damaged,
    destination_record,
    python_only,
    serialize,
)

NATIVE = attribute.NATIVE_PYTHON_VIEW


def test_the_c_fast_path_is_built() -> None:
    # `make install` compiles it (gcc and the Python headers are on every machine we build
    # on); without it the service still works, several times slower at full decoding.
    assert NATIVE, "consumer/records/_speedups.c was not compiled: run `make install`"
    assert kinesis._parse_change is not None


def outcome(data: bytes, *, strict: bool = True) -> tuple[Any, ...]:
    """Everything decoding says about `data`: the event's fields and every view of every
    image, or the DecodeError's reason (strict), or just that there was one (lazy: when an
    error is raised, at decoding or at a view, differs between the paths)."""
    try:
        event = decode_destination_record(data, POSITION, strict=strict)
        views = [
            (image.label, image.python, image.json, image.client, image.wire)
            for image in event.images
        ]
        fields = (
            event.event_id,
            event.event_name,
            event.table,
            event.region,
            event.created_at_us,
            event.ttl_delete,
            event.size,
        )
    except DecodeError as error:
        if not strict:
            return ("error", error.position, error.raw)
        return ("error", error.reason, error.position, error.raw)
    return ("event", fields, _typed(views))


def _typed(value: Any) -> Any:
    """`value` with every scalar paired with its type, so 1 == Decimal(1) == True cannot hide a
    difference."""
    if isinstance(value, dict):
        return {name: _typed(member) for name, member in value.items()}
    if isinstance(value, list | tuple):
        return [_typed(member) for member in value]
    if isinstance(value, set | frozenset):
        return ("set", sorted(repr(member) for member in value))
    return (type(value).__name__, repr(value))


def assert_same(data: bytes) -> Any:
    """Decoding `data` with the C path and without it, strictly and lazily: both paths must
    say the same."""
    native, native_lazy = outcome(data), outcome(data, strict=False)
    with python_only():
        pure, pure_lazy = outcome(data), outcome(data, strict=False)
    assert native == pure
    assert native_lazy == pure_lazy
    assert native_lazy[0] == native[0]
    return native


# --- generated records --------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(adversarial_records())
def test_generated_records_decode_the_same(case: tuple[bytes, dict[str, Any]]) -> None:
    data, _ = case
    assert assert_same(data)[0] == "event"


@settings(max_examples=100, deadline=None)
@given(KEYS, ITEMS, ITEMS)
def test_the_c_converters_equal_the_python_ones(
    keys: dict[str, Any], new: dict[str, Any], old: dict[str, Any]
) -> None:
    new_wire, old_wire = serialize(new), serialize(old)
    expected_new = attribute._item_to_python(new_wire)
    assert _typed(item_to_python(new_wire)) == _typed(expected_new)
    shared = item_to_python_sharing(old_wire, new_wire, expected_new)
    assert _typed(shared) == _typed(attribute._item_to_python(old_wire))
    assert list(shared) == list(old_wire)
    for wire in (new_wire, base64_binaries(new_wire)):  # binary as bytes, then as base64 text
        assert _typed(item_to_json(wire)) == _typed(attribute._item_to_json(wire))
        client = item_to_client(wire)
        assert _typed(client) == _typed(attribute._item_to_client(wire))
        if client == wire:
            assert client is wire  # nothing to convert: the item itself, as in Python


def test_each_c_converter_handles_regular_items_itself() -> None:
    wire = serialize(
        {"s": "x", "n": Decimal("1.5"), "m": {"l": [True, None]}, "ss": {"a"}, "ns": {Decimal(2)}}
    )
    assert _speedups.item_to_python(wire) is not None
    assert _speedups.item_to_json(wire) is not None
    assert _speedups.item_to_client(wire) is wire
    with_text = {"b": {"B": "AAE="}}
    assert _speedups.item_to_client(with_text) is None  # base64 text to bytes: Python's job
    assert item_to_client(with_text) == {"b": {"B": b"\x00\x01"}}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damaged_records_decode_the_same(data: st.DataObject) -> None:
    record = compact(ALL_TYPES if data.draw(st.booleans()) else DOC_RECORDS[1])
    assert_same(damaged(data, record, (*INSERTIONS, b" ", b"\\u00e9", b"1")))


# --- what a hand-written parser gets wrong ------------------------------------------------


def record_with(new_image: dict[str, Any]) -> dict[str, Any]:
    return destination_record({"pk": {"S": "k"}}, new_image, None, event_name="INSERT")


def raw_record(new_image_json: str) -> bytes:
    """A record whose NewImage is the given JSON text, verbatim."""
    text = compact(record_with({"placeholder": {"NULL": True}})).decode()
    marker = '{"placeholder":{"NULL":true}}'
    assert marker in text
    return text.replace(marker, new_image_json).encode()


TEXTS = [
    "",
    "plain",
    'quote " and backslash \\ and slash /',
    "controls \b \f \n \r \t \x00 \x1f",
    "latin é ü ß, cjk 漢字, emoji 😀 𝄞",
    "\u2028\u2029 line separators",
    "x" * 5000,
]


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
@pytest.mark.parametrize("escape", [False, True], ids=["utf8", "ascii-escaped"])
def test_strings_with_escapes_and_unicode(text: str, escape: bool) -> None:
    image = {text or "empty": {"S": text}, "list": {"L": [{"S": text}]}, "set": {"SS": [text]}}
    record = record_with(image)
    data = json.dumps(record, ensure_ascii=escape).encode()
    result = assert_same(data)
    assert result[0] == "event"
    assert _speedups.parse_change(data) is not None  # escapes are the C parser's own work
    event = decode_destination_record(data, POSITION, strict=True)
    assert event.new_image is not None
    assert event.new_image.python[text or "empty"] == text


RAW_IMAGES = [
    # (NewImage JSON text, what it is)
    ('{"a":{"S":"\\ud83d\\ude00"}}', "a surrogate pair escape"),
    ('{"a":{"S":"\\ud83d"}}', "a lone high surrogate escape"),
    ('{"a":{"S":"\\ude00x"}}', "a lone low surrogate escape"),
    ('{"a":{"S":"\\ud83d\\u0041"}}', "a high surrogate before a non-surrogate"),
    ('{"a":{"S":"\\uZZZZ"}}', "a bad hex escape"),
    ('{"a":{"S":"\\q"}}', "an unknown escape"),
    ('{"a":{"S":"tab\there"}}', "a raw tab in a string"),
    ('{"\\u0061":{"S":"x"}}', "an escaped attribute name"),
    ('{"a":{"\\u0053":"x"}}', "an escaped type tag"),
    ('{"a":{"S":"x"},"a":{"S":"y"}}', "a duplicate attribute name"),
    ('{"a":{"S":"x","S":"y"}}', "a duplicate type tag"),
    ('{"a":{"S":"x","N":"1"}}', "two type tags"),
    ('{"a":{}}', "no type tag"),
    (' { "a" : { "S" : "x" } , "b" : { "L" : [ { "N" : "1" } , { "NULL" : true } ] } } ', "spaces"),
    ('{\n\t"a":\r\n{"BOOL":false}}', "tabs and newlines"),
    ('{"a":{"N":"1e5"},"b":{"N":"1E+5"},"c":{"N":"-0"},"d":{"N":"0.000"}}', "number forms"),
    ('{"a":{"N":"00"},"b":{"N":"+1"},"c":{"N":".5"},"d":{"N":"5."}}', "non-JSON number forms"),
    ('{"a":{"N":" 1"}}', "a number with a space"),
    ('{"a":{"N":"1_0"}}', "a number with an underscore"),
    ('{"a":{"N":"\\u0031"}}', "an escaped digit"),
    ('{"a":{"N":"\u0661"}}', "an escaped non-ASCII digit"),
    ('{"a":{"N":"' + chr(0x661) + '"}}', "a non-ASCII digit"),
    ('{"a":{"N":"NaN"}}', "NaN"),
    ('{"a":{"N":"1e999"}}', "an exponent out of range"),
    ('{"a":{"N":"' + "1" * 39 + '"}}', "39 digits"),
    ('{"a":{"N":"' + "9" * 38 + '"},"b":{"N":"-1E-130"},"c":{"N":"9.9E+125"}}', "range edges"),
    ('{"a":{"N":"--1"}}', "two signs"),
    ('{"a":{"N":""}}', "an empty number"),
    ('{"a":{"N":1}}', "a JSON number as N"),
    ('{"a":{"NS":["1","1.0","2"]}}', "equal numbers in a set"),
    ('{"a":{"SS":["x","x"]}}', "duplicate set members"),
    ('{"a":{"B":"AAEC"},"b":{"BS":["AAEC","/w=="]}}', "binary values"),
    ('{"a":{"B":"QR=="}}', "non-canonical base64"),
    ('{"a":{"B":"!!"}}', "invalid base64"),
    ('{"a":{"BOOL":"true"}}', "a string BOOL"),
    ('{"a":{"BOOL":truex}}', "a bad literal"),
    ('{"a":{"NULL":false}}', "NULL false"),
    ('{"a":{"NULL":null}}', "NULL null"),
    ('{"a":{"M":null}}', "a null map"),
    ('{"a":{"M":{}},"b":{"L":[]}}', "empty containers"),
    ('{"a":{"SS":[]}}', "an empty set"),
    ('{"a":{"L":[{"S":"x"},]}}', "a trailing comma"),
    ('{"a":{"S":"x"}', "an unclosed image"),
    ('{"S":{"S":"x"},"M":{"M":{"N":{"N":"1"}}},"L":{"L":[]}}', "attributes named as tags"),
    ('{"a":{"X":"1"}}', "an unknown tag"),
    ('{"a":{"s":"x"}}', "a lowercase tag"),
    ('{"a":"bare"}', "a bare value"),
    ('{"' + "k" * 65 + '":{"S":"long name"},"' + "k" * 64 + '":{"S":"64"}}', "long names"),
]


@pytest.mark.parametrize(
    "image", [text for text, _ in RAW_IMAGES], ids=[what for _, what in RAW_IMAGES]
)
def test_hand_written_parser_cases(image: str) -> None:
    assert_same(raw_record(image))


HANDLED_IN_C = ["a surrogate pair escape", "spaces", "tabs and newlines", "number forms"]
HANDLED_IN_C += ["binary values", "empty containers", "long names"]
HANDLED_IN_C += ["attributes named as tags"]


@pytest.mark.parametrize("what", HANDLED_IN_C)
def test_regular_cases_do_not_fall_back(what: str) -> None:
    (image,) = [text for text, name in RAW_IMAGES if name == what]
    assert _speedups.parse_change(raw_record(image)) is not None


NOT_JSON_IMAGES = [
    (b'{"a":{"S":"\xc0\x80"}}', "an overlong UTF-8 form"),
    (b'{"a":{"S":"\xed\xa0\x80"}}', "a UTF-8 surrogate"),
    (b'{"a":{"S":"\xf4\x90\x80\x80"}}', "UTF-8 above U+10FFFF"),
    (b'{"a":{"S":"\xe2\x82"}}', "a truncated UTF-8 sequence"),
    (b'{"a":{"S":"\xff"}}', "a byte that is never UTF-8"),
    (b'{"a":{"S":"\\x"}}', "an unknown escape"),
    (b'{"a":{"S":"\\u12"}}', "a short \\u escape"),
    (b'{"a":{"S":"a\x01b"}}', "a raw control character"),
    (b'{"a":{"N":01}}', "a leading zero"),
    (b'{"a":{"N":1.}}', "a bare decimal point"),
    (b'{"a":{"N":-}}', "a lone minus"),
    (b'{"a":{"N":1e}}', "an empty exponent"),
    (b'{"a":{"L":[1,]}}', "a trailing comma"),
    (b'{"a":{"L":[1}}', "mismatched brackets"),
    (b'{"a" {"S":"x"}}', "a missing colon"),
    (b'{"a":{"S":"x"} "b":{"S":"y"}}', "a missing comma"),
    (b'{"a":{"BOOL":True}}', "a capitalized literal"),
    (b'{a:{"S":"x"}}', "an unquoted key"),
]


@pytest.mark.parametrize(
    "image", [text for text, _ in NOT_JSON_IMAGES], ids=[what for _, what in NOT_JSON_IMAGES]
)
def test_malformed_json_inside_an_image_fails_at_decoding(image: bytes) -> None:
    marker = b'{"placeholder":{"NULL":true}}'
    data = compact(record_with({"placeholder": {"NULL": True}})).replace(marker, image)
    assert image in data
    assert _speedups.parse_change(data) is None
    assert _speedups.parse_envelope(data) is None  # the images are checked, though not built
    for strict in (False, True):
        with pytest.raises(DecodeError, match="not JSON"):
            decode_destination_record(data, POSITION, strict=strict)
    assert_same(data)


ENVELOPES = [
    (lambda r: r.update(futureFloat=1.5), "a float outside the images"),
    (lambda r: r.update(futureInt=10**20), "a 21-digit integer outside the images"),
    (lambda r: r.update(futureInt=-(10**17)), "an 18-digit negative integer"),
    (lambda r: r.update(futureInt=10**18 - 1), "the largest integer the C parser reads"),
    (lambda r: r.update(futureInt=10**18), "a 19-digit integer"),
    (lambda r: r.update(futureInt=2**63), "an integer over 64 bits signed"),
    (lambda r: r["dynamodb"].update(OldImage=None), "a null OldImage"),
    (lambda r: r["dynamodb"].update(NewImage=[1]), "an array NewImage"),
    (lambda r: r["dynamodb"].update(Keys={}), "empty Keys"),
    (lambda r: r["dynamodb"].update(Keys=None), "null Keys"),
    (lambda r: r.update(dynamodb=[]), "an array body"),
    (lambda r: r.update(nested={"dynamodb": {"Keys": 1}}), "a nested dynamodb key"),
    (
        lambda r: r.update(
            userIdentity={"type": "Service", "principalId": "dynamodb.amazonaws.com"}
        ),
        "a TTL delete",
    ),
]


@pytest.mark.parametrize(
    "change", [change for change, _ in ENVELOPES], ids=[what for _, what in ENVELOPES]
)
def test_envelope_cases(change: Callable[[dict[str, Any]], None]) -> None:
    record = copy.deepcopy(DOC_RECORDS[1])
    change(record)
    assert_same(json.dumps(record).encode())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"[]",
        b'"x"',
        b"{}",
        b'{"a":1}x',
        b'{"a":1,"a":2}',
        b'{"a":01}',
        b'{"a":-}',
        b'{"a":tru}',
        b'{"a":"\xff"}',
        b'{"a":"\xed\xa0\x80"}',
        b"\xef\xbb\xbf{}",
        compact(DOC_RECORDS[1]) + b" \n",
        b" \t" + compact(DOC_RECORDS[1]),
    ],
)
def test_whole_record_syntax(data: bytes) -> None:
    assert_same(data)


def test_nesting_at_and_beyond_the_parser_depth() -> None:
    for depth in (32, 150, 199, 200, 260):
        value: dict[str, Any] = {"S": "leaf"}
        for level in range(depth):
            value = {"M": {"m": value}} if level % 2 else {"L": [value]}
        data = raw_record(json.dumps({"deep": value}, separators=(",", ":")))
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(20_000)  # for _typed and the views' deep comparisons
        try:
            assert_same(data)
        finally:
            sys.setrecursionlimit(limit)


def test_many_distinct_attribute_names_share_the_key_cache_correctly() -> None:
    # More names than the cache has slots, so slots are reused and compared.
    records = [
        compact(record_with({f"attr{n}_{m}": {"N": str(m)} for m in range(64)})) for n in range(80)
    ]
    native = [outcome(data) for data in records + records]
    with python_only():
        assert native == [outcome(data) for data in records + records]


def test_equal_numbers_in_a_record_are_one_decimal_and_results_are_independent() -> None:
    data = raw_record('{"a":{"N":"1.50"},"b":{"N":"1.50"},"c":{"NS":["1.50","2"]}}')
    first = decode_destination_record(data, POSITION, strict=True)
    second = decode_destination_record(data, POSITION, strict=True)
    assert first.new_image is not None and second.new_image is not None
    view = first.new_image.python
    assert view["a"] is view["b"]
    assert str(view["a"]) == "1.50"
    view["a"] = Decimal(7)  # read-only by contract; still, records never share a view
    assert second.new_image.python["a"] == Decimal("1.50")
    assert second.new_image.python is not view


def test_strict_decoding_keeps_the_wire_view_exact() -> None:
    record = copy.deepcopy(DOC_RECORDS[1])
    event = decode_destination_record(compact(record), POSITION, strict=True)
    assert event.keys.wire == record["dynamodb"]["Keys"]
    assert event.new_image is not None and event.old_image is not None
    assert event.new_image.wire == record["dynamodb"]["NewImage"]
    assert event.old_image.wire == record["dynamodb"]["OldImage"]


def test_no_memory_is_kept_per_record() -> None:
    inputs = [
        compact(ALL_TYPES),
        compact(DOC_RECORDS[1]),
        raw_record('{"a":{"N":"1e999"}}'),  # an error inside the C parser
        raw_record('{"a":{"B":"!!"}}'),  # an error from a Python callback
        raw_record('{"a":{"S":"\\ud83d"}}'),  # handed back to the Python path
        raw_record('{"a":{"S":"\\u00e9 Ã©"}}'),  # checked by decoding, in the envelope path
        b'{"a":"\xff"}',
    ]

    def run(times: int) -> None:
        for _ in range(times):
            for data in inputs:
                for strict in (False, True):  # the envelope path and the one-pass parser
                    with suppress(DecodeError):
                        decode_destination_record(data, POSITION, strict=strict)

    run(300)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run(3000)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # 18,000 decodes; a leak of even one small object per decode would be ~1 MB.
    assert after - before < 64 * 1024


def test_parse_change_gives_plain_values_outside_the_images() -> None:
    record = copy.deepcopy(DOC_RECORDS[1])
    record["future"] = {"list": [1, -2, True, False, None, "s", {"x": []}]}
    parsed = _speedups.parse_change(orjson.dumps(record))
    assert parsed is not None
    assert parsed["future"] == record["future"]
    assert parsed["dynamodb"]["SizeBytes"] == record["dynamodb"]["SizeBytes"]
    assert parsed["dynamodb"]["Keys"] == attribute._item_to_python(record["dynamodb"]["Keys"])
    assert _speedups.parse_change(bytearray(b"{}")) is None  # bytes only


# --- the envelope parser (lazy decoding) ---------------------------------------------------


def assert_envelope_agrees(data: bytes) -> None:
    """parse_envelope takes whatever the one-pass parser takes (so no regular record leaves the
    envelope path), and what it takes is JSON whose envelope it reads as orjson does, each item
    image that is an object standing as `...`."""
    envelope = _speedups.parse_envelope(data)
    if _speedups.parse_json(data) is not None:
        assert envelope is not None
    if envelope is None:
        return
    expected = orjson.loads(data)  # raises if the envelope parser took what is not JSON
    body = expected.get("dynamodb")
    if isinstance(body, dict):
        for name in ("NewImage", "OldImage"):
            if isinstance(body.get(name), dict):
                body[name] = ...
    assert envelope == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(adversarial_records())
def test_the_envelope_parser_reads_generated_records(case: tuple[bytes, dict[str, Any]]) -> None:
    data, _ = case
    assert _speedups.parse_envelope(data) is not None
    assert_envelope_agrees(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_envelope_parser_on_damaged_records(data: st.DataObject) -> None:
    record = compact(ALL_TYPES if data.draw(st.booleans()) else DOC_RECORDS[1])
    assert_envelope_agrees(damaged(data, record, (*INSERTIONS, b" ", b"\\u00e9", b"1")))


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_the_envelope_parser_checks_strings_in_the_images(text: str) -> None:
    for escape in (False, True):
        data = json.dumps(record_with({"s": {"S": text}}), ensure_ascii=escape).encode()
        assert _speedups.parse_envelope(data) is not None
        assert_envelope_agrees(data)
    marker = b'{"placeholder":{"NULL":true}}'
    for bad in (b'"\\ud83d"', b'"\\x"', b'"\xff"', b'"\xed\xa0\x80"', b'"\x01"', b'"open'):
        data = compact(record_with({"placeholder": {"NULL": True}}))
        data = data.replace(marker, b'{"s":{"S":' + bad + b"}}")
        assert _speedups.parse_envelope(data) is None, bad


def test_lazy_decoding_leaves_the_images_unparsed() -> None:
    """The null sink's path: the envelope is decoded, the images are not until a view is asked
    for, and then one parse serves both images and record()."""
    data = compact(DOC_RECORDS[1])
    event = decode_destination_record(data, POSITION)
    assert event.new_image is not None and event.old_image is not None
    assert event.new_image._wire is None and event.old_image._wire is None
    assert not isinstance(event._record, dict)
    assert event.new_image.wire == DOC_RECORDS[1]["dynamodb"]["NewImage"]
    assert event.old_image.wire is event.record()["dynamodb"]["OldImage"]
