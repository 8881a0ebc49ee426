"""DynamoDB typed JSON (`{"S": "x"}`, `{"N": "1.5"}`, ...) to Python and to JSON.

One converter over an item map per image view (see `Image`):

- `item_to_python`: boto3's TypeDeserializer output wherever boto3 accepts the input (bytes
  for `Binary`), but strict: {"S": 1} or "NaN" are rejected, not passed through (number.py).
- `item_to_json`: JSON-native values: `JsonNumber`, binary as base64 text, sets as lists.
- `item_to_client`: typed JSON with binary values as bytes, what botocore's client takes.

Binary values may arrive as base64 text (Kinesis, Lambda) or bytes (boto3's Streams client);
base64 must be canonical. All three check DynamoDB's rules ("Supported data types and naming
rules", "Quotas: attributes": a known tag with a payload of its type, numbers of at most 38
digits from 1E-130 to below 1E+126, sets non-empty without repeats, at most 32 levels deep)
and raise only InvalidAttribute, whose path names the bad value and whose reason names the
rule, never the value. The python and JSON views share one walker with inline paths for the
commonest types; the client view checks with the python view's converters.

The C fast path (`_speedups.c`; `NATIVE_PYTHON_VIEW` says whether it was built) converts
regular input with this module's number context, JsonNumber and base64 checks, and hands
anything irregular back to the pure-Python code below, which gives the result or the error.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, TypeAlias, TypeVar

from consumer.records.errors import InvalidAttribute
from consumer.records.number import (
    NOT_A_NUMBER,
    OUT_OF_RANGE,
    JsonNumber,
    create_number,
    parse_number,
)

try:
    from consumer.records import _speedups
except ImportError:  # not compiled (no C compiler at install): the pure-Python path does it all
    _speedups = None  # type: ignore[assignment]  # a module or None; mypy sees only the module

# An item image in DynamoDB's typed JSON, as received: attribute name -> {"TAG": value}.
WireItem: TypeAlias = dict[str, Any]
# The same item as native Python values (str, Decimal, bytes, bool, None, set, list, dict).
PythonItem: TypeAlias = dict[str, Any]
# The same item as JSON-native values (str, JsonNumber, bool, None, list, dict).
JsonItem: TypeAlias = dict[str, Any]

# What the C-level conversions may raise on bad input (decimal signals are ArithmeticErrors,
# binascii.Error and non-ASCII base64 are ValueErrors); turned into InvalidAttribute.
_CONVERSION_ERRORS = (ArithmeticError, ValueError, TypeError)

_a2b_base64 = binascii.a2b_base64
_b2a_base64 = binascii.b2a_base64

# DynamoDB nests attribute values at most 32 levels deep, counting a top-level attribute as
# level 1 (Quotas, "Nested attribute depth"); the members of a map or list at level 32 would
# be at level 33.
MAX_LEVEL = 32
TOO_DEEP = f"nested deeper than DynamoDB's {MAX_LEVEL} levels"


# --- shared leaf checks ---------------------------------------------------------------------


def _tagged(value: object) -> tuple[str, object]:
    """The (type tag, payload) of one attribute value."""
    if type(value) is not dict:
        raise InvalidAttribute(
            f"an attribute value must be an object with one type tag, not {_kind(value)}"
        )
    if len(value) != 1:
        tags = ", ".join(repr(tag) for tag in list(value)[:4])
        raise InvalidAttribute(f"an attribute value must have exactly one type tag, not [{tags}]")
    ((tag, payload),) = value.items()
    return tag, payload


def _string(value: object) -> str:
    if type(value) is str:
        return value
    raise InvalidAttribute(f"an S value must be a string, not {_kind(value)}")


def _bool(value: object) -> bool:
    if type(value) is bool:
        return value
    raise InvalidAttribute(f"a BOOL value must be true or false, not {_kind(value)}")


def _null(value: object) -> None:
    if value is True:
        return None
    raise InvalidAttribute(f"a NULL value must be true, not {_kind(value)}")


def _list(value: object, tag: str) -> list[Any]:
    if type(value) is list:
        return value
    raise InvalidAttribute(f"an {tag} value must be an array, not {_kind(value)}")


def _map(value: object) -> dict[str, Any]:
    if type(value) is dict:
        return value
    raise InvalidAttribute(f"an M value (or an item) must be an object, not {_kind(value)}")


def decode_base64(text: str) -> bytes:
    """The bytes of canonical base64 `text`; InvalidAttribute if it is not exactly that."""
    try:
        data = _a2b_base64(text, strict_mode=True)
    except _CONVERSION_ERRORS:
        raise InvalidAttribute("invalid base64: a binary value must be base64 text") from None
    # strict_mode still accepts extra padding and non-zero trailing bits; the canonical
    # encoding is the only one DynamoDB writes and the one the JSON view passes through.
    if _b2a_base64(data, newline=False) != text.encode("ascii"):
        raise InvalidAttribute(
            "non-canonical base64: a binary value must be base64 as DynamoDB writes it"
        )
    return data


def _binary(value: object) -> bytes:
    if type(value) is str:
        return decode_base64(value)
    if type(value) is bytes:
        return value
    if type(value) is bytearray:
        return bytes(value)
    raise InvalidAttribute(f"a binary value must be base64 text or bytes, not {_kind(value)}")


def _binary_text(value: object) -> str:
    if type(value) is str:
        decode_base64(value)
        return value
    if type(value) is bytes or type(value) is bytearray:
        return _b2a_base64(value, newline=False).decode("ascii")
    raise InvalidAttribute(f"a binary value must be base64 text or bytes, not {_kind(value)}")


def _set_string(value: object) -> str:
    if type(value) is str:
        return value
    raise InvalidAttribute(f"an SS member must be a string, not {_kind(value)}")


def _set_members(value: object, tag: str) -> list[Any]:
    """The members of an SS, NS or BS payload: a non-empty array ("DynamoDB does not support
    empty sets")."""
    members = _list(value, tag)
    if not members:
        raise InvalidAttribute(
            f"a set ({tag}) must have at least one member (DynamoDB has no empty sets)"
        )
    return members


def _converted_members(convert: Callable[[Any], Any], members: list[Any]) -> list[Any]:
    """`convert` of each set member; an error names the member's index."""
    out: list[Any] = []
    for index, member in enumerate(members):
        try:
            out.append(convert(member))
        except InvalidAttribute as error:
            error.path.append(index)
            raise
    return out


def _repeated(converted: list[Any], tag: str) -> InvalidAttribute:
    """The error for a set whose converted members are not distinct ("Each value within a set
    must be unique"), naming the first repeat: numbers compare by value (1 and 1.0 are one
    number), binary by its bytes (or, equivalently, its canonical base64)."""
    seen: set[Any] = set()
    for index, member in enumerate(converted):
        if member in seen:
            return InvalidAttribute(
                f"{tag} members must not repeat (a set's values are unique)", [index]
            )
        seen.add(member)
    return InvalidAttribute(f"{tag} members must not repeat (a set's values are unique)")


def _set_converted(
    tag: str, payload: object, number: Callable[[Any], Any], binary: Callable[[Any], Any]
) -> list[Any]:
    """A set payload's members, non-empty and each valid: NS converted by `number`, BS by
    `binary`, in the order received."""
    convert = _set_string if tag == "SS" else number if tag == "NS" else binary
    return _converted_members(convert, _set_members(payload, tag))


def _python_set(tag: str, payload: object) -> set[Any]:
    """A set payload as the python view's set (str, Decimal or bytes members), checked:
    non-empty, every member valid, no member repeated."""
    converted = _set_converted(tag, payload, parse_number, _binary)
    members = set(converted)
    if len(members) != len(converted):
        raise _repeated(converted, tag)
    return members


def _json_set(tag: str, payload: object) -> list[Any]:
    """A set as a list in the order received, checked like the python view's: JsonNumbers
    compare by value, and canonical base64 text is equal exactly when the bytes are."""
    members = list(_set_converted(tag, payload, _json_number, _binary_text))
    if len(set(members)) != len(members):
        raise _repeated(members, tag)
    return members


def _json_number(value: object) -> JsonNumber:
    return JsonNumber(_number_text(value))


def _number_text(value: object) -> str:
    if type(value) is str:
        return value
    raise InvalidAttribute(f"a number must be a string, not {_kind(value)}")


# --- the python and JSON views: one walker, a converter per type tag ------------------------


@dataclass(frozen=True, slots=True)
class _View:
    """How one view converts: `number` an N payload (a string) on the inline path (a
    non-finite result goes to the general path), `leaves` every tag but M and L."""

    number: Callable[[str], Decimal]
    leaves: dict[str, Callable[[Any], Any]]


_SET_TAGS = ("SS", "NS", "BS")
_PYTHON = _View(
    create_number,
    {
        "S": _string,
        "N": parse_number,
        "BOOL": _bool,
        "NULL": _null,
        "B": _binary,
        **{tag: partial(_python_set, tag) for tag in _SET_TAGS},
    },
)
_JSON = _View(
    JsonNumber,
    {
        "S": _string,
        "N": _json_number,
        "BOOL": _bool,
        "NULL": _null,
        "B": _binary_text,
        **{tag: partial(_json_set, tag) for tag in _SET_TAGS},
    },
)


def _too_deep(level: int, members: dict[str, Any] | list[Any]) -> None:
    """Raise if `members` (of a map or list whose members are at `level`) exist too deep."""
    if level > MAX_LEVEL and members:
        first: str | int = next(iter(members)) if type(members) is dict else 0
        raise InvalidAttribute(TOO_DEEP, [first])


_Members = TypeVar("_Members", dict[str, Any], list[Any])


def _converted(view: _View, members: _Members, level: int = 1) -> _Members:
    """An item, M or L payload (checked to be an object or array) whose members are at
    `level`, converted by `view`; an error names the member."""
    if level > MAX_LEVEL:
        _too_deep(level, members)
    out: _Members
    if isinstance(members, dict):
        pairs: Iterable[tuple[Any, object]] = members.items()
        out = {}
    else:
        pairs = enumerate(members)
        out = [None] * len(members)
    number = view.number
    inner = level + 1
    for step, value in pairs:
        try:
            # Inline paths for the common types, in order of frequency (S, N, M, L); any
            # irregularity, including every error, is left to _value, which names it.
            if type(value) is dict and len(value) == 1:
                payload = value.get("S", value)
                if payload is not value:
                    if type(payload) is str:
                        out[step] = payload
                        continue
                else:
                    payload = value.get("N", value)
                    if payload is not value:
                        if type(payload) is str:
                            converted = number(payload)
                            if converted.is_finite():
                                out[step] = converted
                                continue
                    else:
                        payload = value.get("M", value)
                        if payload is not value:
                            out[step] = _converted(view, _map(payload), inner)
                            continue
                        payload = value.get("L", value)
                        if payload is not value:
                            out[step] = _converted(view, _list(payload, "L"), inner)
                            continue
            out[step] = _value(view, value, level)
        except InvalidAttribute as error:
            error.path.append(step)
            raise
        except _CONVERSION_ERRORS as error:
            raise _explain(error, value, step) from error
    return out


def _value(view: _View, value: object, level: int = 1) -> Any:
    """One attribute value at `level` (a top-level attribute is level 1)."""
    tag, payload = _tagged(value)
    if tag == "M":
        return _converted(view, _map(payload), level + 1)
    if tag == "L":
        return _converted(view, _list(payload, "L"), level + 1)
    leaf = view.leaves.get(tag)
    if leaf is None:
        raise InvalidAttribute(_unknown_tag(tag))
    return leaf(payload)


def _value_of(view: _View, value: object) -> Any:
    try:
        return _value(view, value)
    except _CONVERSION_ERRORS as error:
        raise _explain(error, value, None) from error


def item_to_python(item: object) -> PythonItem:
    """An item as native Python values, as TypeDeserializer gives them."""
    if _native_item is not None:
        converted = _native_item(item)
        if converted is not None:
            return converted
    return _item_to_python(item)


def _item_to_python(item: object) -> PythonItem:
    return _converted(_PYTHON, _map(item))


def item_to_python_sharing(item: object, known_wire: WireItem, known: PythonItem) -> PythonItem:
    """item_to_python, reusing `known[name]` where `item[name]` equals `known_wire[name]`."""
    if _native_sharing is not None:
        converted = _native_sharing(item, known_wire, known)
        if converted is not None:
            return converted
    mapping = _map(item)
    shared: PythonItem = {}
    rest: WireItem = {}
    missing = object()
    for name, value in mapping.items():
        if known_wire.get(name, missing) == value and name in known:
            shared[name] = known[name]
        else:
            rest[name] = value
    converted = _item_to_python(rest) if rest else {}
    # Keep the attribute order of the item itself.
    return {name: shared[name] if name in shared else converted[name] for name in mapping}


def value_to_python(value: object) -> Any:
    """One attribute value (`{"TAG": payload}`) as a native Python value."""
    return _value_of(_PYTHON, value)


def item_to_json(item: object) -> JsonItem:
    """An item (or M value) as JSON-native values; numbers exact (JsonNumber)."""
    if _native_json is not None:
        converted = _native_json(item)
        if converted is not None:
            return converted
    return _item_to_json(item)


def _item_to_json(item: object) -> JsonItem:
    return _converted(_JSON, _map(item))


def value_to_json(value: object) -> Any:
    """One attribute value (`{"TAG": payload}`) as a JSON-native value."""
    return _value_of(_JSON, value)


# --- client view ----------------------------------------------------------------------------


def item_to_client(item: object) -> WireItem:
    """An item (or M value) in typed JSON with binary values as bytes, validated.

    Returns `item` itself when it holds no base64 text (copy on write), so for images without
    binary attributes this costs one validating walk and no copies.
    """
    if _native_client is not None:
        checked = _native_client(item)
        if checked is not None:
            return checked
    return _item_to_client(item)


def _item_to_client(item: object, level: int = 1) -> WireItem:
    source = _map(item)
    if level > MAX_LEVEL:
        _too_deep(level, source)
    changes = _client_changes(source.items(), level)
    return {**source, **changes} if changes else source


def _client_list(value: object, level: int) -> list[Any]:
    source = _list(value, "L")
    if level > MAX_LEVEL:
        _too_deep(level, source)
    changes = _client_changes(enumerate(source), level)
    if not changes:
        return source
    return [changes.get(index, member) for index, member in enumerate(source)]


def _client_changes(pairs: Iterable[tuple[Any, object]], level: int) -> dict[Any, Any]:
    """The members of a map or list at `level` whose client form is not the value itself."""
    changes: dict[Any, Any] = {}
    for step, value in pairs:
        if type(value) is dict and len(value) == 1 and type(value.get("S")) is str:
            continue  # the commonest value, valid as it is
        try:
            converted = _client_value(value, level)
        except InvalidAttribute as error:
            error.path.append(step)
            raise
        except _CONVERSION_ERRORS as error:
            raise _explain(error, value, step) from error
        if converted is not value:
            changes[step] = converted
    return changes


def _client_value(value: object, level: int) -> Any:
    """`value` itself, or a copy with its binary values as bytes; checked like the python
    view (by its converters)."""
    tag, payload = _tagged(value)
    if tag == "M":
        converted = _item_to_client(payload, level + 1)
        return value if converted is payload else {"M": converted}
    if tag == "L":
        members = _client_list(payload, level + 1)
        return value if members is payload else {"L": members}
    leaf = _PYTHON.leaves.get(tag)
    if leaf is None:
        raise InvalidAttribute(_unknown_tag(tag))
    checked = leaf(payload)
    if tag == "B" and type(payload) is not bytes:
        return {"B": checked}
    if tag == "BS":
        members = _list(payload, tag)
        if any(type(member) is not bytes for member in members):
            return {"BS": [_binary(member) for member in members]}
    return value


# The C fast path, configured with this module's number context, JsonNumber and binary checks,
# so that its results are exactly the pure-Python path's.
_NativeConverter: TypeAlias = Callable[[object], dict[str, Any] | None]
if _speedups is not None:
    _speedups.configure(create_number, _binary, JsonNumber, _binary_text, Decimal.__new__)
    _native_item: _NativeConverter | None = _speedups.item_to_python
    _native_json: _NativeConverter | None = _speedups.item_to_json
    _native_client: _NativeConverter | None = _speedups.item_to_client
    _native_sharing: Callable[[object, WireItem, PythonItem], PythonItem | None] | None = (
        _speedups.item_to_python_sharing
    )
else:
    _native_item = _native_json = _native_client = None
    _native_sharing = None

NATIVE_PYTHON_VIEW = _speedups is not None


# --- errors ---------------------------------------------------------------------------------


def _explain(error: Exception, value: object, step: str | int | None) -> InvalidAttribute:
    """An InvalidAttribute for an exception raised by a C-level conversion of `value` (named
    by its kind only: values stay out of messages)."""
    if isinstance(error, InvalidOperation):
        reason = NOT_A_NUMBER
    elif isinstance(error, ArithmeticError):
        reason = OUT_OF_RANGE
    else:
        reason = f"an invalid attribute value ({type(error).__name__} on {_kind(value)})"
    return InvalidAttribute(reason, [] if step is None else [step])


def _unknown_tag(tag: str) -> str:
    # A tag is the record's structure, not item contents, but an unknown one may be anything:
    # show it only when it is short and printable.
    shown = repr(tag) if len(tag) <= 8 and tag.isprintable() else f"of {len(tag)} characters"
    return f"unknown type tag {shown} (DynamoDB's are S N B SS NS BS M L BOOL NULL)"


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return type(value).__name__


__all__ = [
    "NATIVE_PYTHON_VIEW",
    "JsonItem",
    "PythonItem",
    "WireItem",
    "decode_base64",
    "item_to_client",
    "item_to_json",
    "item_to_python",
    "value_to_json",
    "value_to_python",
]
