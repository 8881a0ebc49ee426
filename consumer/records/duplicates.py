"""A record's JSON parsed so that a repeated key is an error, not a silent choice.

JSON parsers disagree about an object that repeats a key (some read the first, orjson the
last), and DynamoDB never writes one (attribute names are unique, one type per value), so
every decoder parses with `parse_record`, which rejects a repeat wherever it is. The C parser
(`_speedups.parse_json`) returns None on a repeated key (or anything irregular); then orjson
says whether the text is JSON, and Python's json with an object hook names the first repeat:
a second parse, paid only by records the C parser did not take.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from consumer.records.errors import InvalidRecord

try:
    from consumer.records import _speedups
except ImportError:  # not compiled: orjson and the json check below do it all
    _speedups = None  # type: ignore[assignment]  # a module or None; mypy sees only the module

# The images of a change record: their members are attributes, their attributes' members
# type tags.
IMAGE_KEYS = ("Keys", "NewImage", "OldImage")

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
# Switched off (None) by tests that compare the pure-Python path with the C one.
native_parse: Callable[[bytes], Any] | None = None if _speedups is None else _speedups.parse_json


def parse_record(data: bytes) -> Any:
    """The JSON value of `data`; InvalidRecord if it is not JSON or an object in it repeats a
    key (the reason names where, never a value)."""
    native = native_parse
    if native is not None:
        parsed = native(data)
        if parsed is not None:
            return parsed
    try:
        parsed = _loads(data)
    except _JSONDecodeError as error:
        raise InvalidRecord(f"not JSON: {error}") from None
    repeated = find_repeated_key(data)
    if repeated is not None:
        raise InvalidRecord(repeated)
    return parsed


class _Repeating(dict[str, Any]):
    """An object that repeats a key (`repeated`, its first repeat); a marker for the search."""

    __slots__ = ("repeated",)
    repeated: str


def find_repeated_key(data: bytes) -> str | None:
    """Where the first object of JSON `data` (in document order, outermost first) repeats a
    key, as a reason for a DecodeError; None if none does (or `data` is not JSON)."""
    marked: list[bool] = []

    def make_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        value = dict(pairs)
        if len(value) == len(pairs):
            return value
        marked.append(True)
        repeating = _Repeating(value)
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                repeating.repeated = key
                break
            seen.add(key)
        return repeating

    try:
        # Numbers stay text: only the structure matters here, and text never fails to convert.
        document = json.loads(
            data,
            object_pairs_hook=make_object,
            parse_float=str,
            parse_int=str,
            parse_constant=str,
        )
    except (ValueError, RecursionError):
        return None
    if not marked:
        return None
    found = _first_repeating(document, [])
    if found is None:  # unreachable: a marked object is in the document
        return None
    path, key = found
    return describe_repeat(path, key)


def _first_repeating(value: Any, path: list[str | int]) -> tuple[list[str | int], str] | None:
    if isinstance(value, dict):
        if type(value) is _Repeating:
            return path, value.repeated
        for key, member in value.items():
            found = _first_repeating(member, [*path, key])
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, member in enumerate(value):
            found = _first_repeating(member, [*path, index])
            if found is not None:
                return found
    return None


def describe_repeat(path: list[str | int], key: str) -> str:
    """The reason for the repeated `key` in the object at `path` (keys and indexes from the
    record's root). Inside an image it reads like the attribute errors: `NewImage['a']['b']:
    repeats the attribute name 'x'`, naming attributes and list indexes, not type tags."""
    if len(path) >= 2 and path[0] == "dynamodb" and path[1] in IMAGE_KEYS:
        label, steps = path[1], path[2:]
        where = "".join(f"[{step!r}]" for step in steps[0::2])
        if len(steps) % 2 == 0:  # an item or an M payload: its keys are attribute names
            return f"{label}{where}: repeats the attribute name {key!r} (names are unique)"
        return f"{label}{where}: repeats the type tag {key!r} (a value has one type)"
    if not path:
        return f"the record repeats the key {key!r}"
    where = ".".join(str(step) for step in path)
    return f"{where} repeats the key {key!r}"
