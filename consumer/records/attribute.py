"""DynamoDB typed JSON (`{"S": "x"}`, `{"N": "1.5"}`, ...) to Python and to JSON.

Three converters over an item map (attribute name -> attribute value), one per image view:

- `item_to_python`: native values, equal to boto3's TypeDeserializer output wherever boto3
  accepts the input: str, Decimal, bytes (boto3 gives `Binary`, which compares equal to
  bytes), bool, None, set, list, dict. (It also reads the few numbers at the bottom of
  DynamoDB's range that boto3's decimal context rejects, and rejects what is not valid typed
  JSON, such as {"S": 1} or "NaN", which boto3 passes through; see number.py.)
- `item_to_json`: JSON-native values: numbers as `JsonNumber` (exact; written with DynamoDB's
  own digits by `to_json_bytes`), binary as base64 text, sets as lists in the order received.
- `item_to_client`: typed JSON with binary values as bytes, the shape botocore's low-level
  client takes for PutItem (it base64-encodes bytes itself; base64 text would be stored as is).

Binary values may arrive as base64 text (Kinesis destination records, Lambda events) or as
bytes (boto3's DynamoDB Streams client); both are accepted. Base64 text is decoded strictly:
only the canonical encoding is valid.

All three validate the same things and raise only InvalidAttribute, whose path names the bad
value and whose reason names the rule, never the value. The rules are DynamoDB's own
("Supported data types and naming rules", "Quotas: attributes"): a known type tag with a
payload of its type; numbers of at most 38 digits from 1E-130 to below 1E+126; canonical
base64; sets (SS, NS, BS) non-empty and without duplicate members (numbers compared by value,
binary by bytes); values nested at most 32 levels deep, a top-level attribute being level 1.
The loops are written out per view, with inline paths for the commonest types, because this
is the hot path of every pipeline.

The three views have a C fast path (`_speedups.c`, built at install; `NATIVE_PYTHON_VIEW` says
whether it is there). It converts regular input only, with this module's own number context,
JsonNumber and base64 checks, and hands anything irregular back to the pure-Python converters
below, which give the same result or the error that names the problem. Python-level walking
costs about a microsecond per attribute value here, several times what parsing the JSON costs.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

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


def _string_list(value: object, tag: str) -> list[str]:
    strings = _set_members(value, tag)
    for index, item in enumerate(strings):
        if type(item) is not str:
            raise InvalidAttribute(f"an SS member must be a string, not {_kind(item)}", [index])
    return strings


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


def _json_number(value: object) -> JsonNumber:
    return JsonNumber(_number_text(value))


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


def _set_value(tag: str, payload: object) -> set[Any]:
    """A set payload as the python view's set (str, Decimal or bytes members), checked:
    non-empty, every member valid, no member repeated."""
    converted: list[Any]
    if tag == "SS":
        converted = _string_list(payload, tag)
    else:
        convert = parse_number if tag == "NS" else _binary
        converted = _converted_members(convert, _set_members(payload, tag))
    members = set(converted)
    if len(members) != len(converted):
        raise _repeated(converted, tag)
    return members


# --- python view ----------------------------------------------------------------------------


def item_to_python(item: object) -> PythonItem:
    """An item as native Python values, as TypeDeserializer gives them."""
    if _native_item is not None:
        converted = _native_item(item)
        if converted is not None:
            return converted
    return _item_to_python(item)


def item_to_python_sharing(item: object, known_wire: WireItem, known: PythonItem) -> PythonItem:
    """item_to_python, reusing `known[name]` where `item[name]` equals `known_wire[name]`."""
    if _native_sharing is not None:
        converted = _native_sharing(item, known_wire, known)
        if converted is not None:
            return converted
    return _item_to_python_sharing(item, known_wire, known)


def _too_deep(level: int, members: dict[str, Any] | list[Any]) -> None:
    """Raise if `members` (of a map or list whose members are at `level`) exist too deep."""
    if level > MAX_LEVEL and members:
        first: str | int = next(iter(members)) if type(members) is dict else 0
        raise InvalidAttribute(TOO_DEEP, [first])


def _item_to_python(item: object, level: int = 1) -> PythonItem:
    out: PythonItem = {}
    mapping = _map(item)
    if level > MAX_LEVEL:
        _too_deep(level, mapping)
    inner = level + 1
    for name, value in mapping.items():
        try:
            # Inline paths for the common types, in order of frequency (S, N, M, L); any
            # irregularity, including every error, is left to _python_value, which names it.
            if type(value) is dict and len(value) == 1:
                payload = value.get("S", value)
                if payload is not value:
                    if type(payload) is str:
                        out[name] = payload
                        continue
                else:
                    payload = value.get("N", value)
                    if payload is not value:
                        if type(payload) is str:
                            number = create_number(payload)
                            if number.is_finite():
                                out[name] = number
                                continue
                    else:
                        payload = value.get("M", value)
                        if payload is not value:
                            out[name] = _item_to_python(payload, inner)
                            continue
                        payload = value.get("L", value)
                        if payload is not value:
                            out[name] = _python_list(payload, inner)
                            continue
            out[name] = _python_value(value, level)
        except InvalidAttribute as error:
            error.path.append(name)
            raise
        except _CONVERSION_ERRORS as error:
            raise _explain(error, value, name) from error
    return out


def _item_to_python_sharing(item: object, known_wire: WireItem, known: PythonItem) -> PythonItem:
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


def _python_list(value: object, level: int) -> list[Any]:
    out: list[Any] = []
    append = out.append
    members = _list(value, "L")
    if level > MAX_LEVEL:
        _too_deep(level, members)
    inner = level + 1
    for member in members:
        try:
            # The same inline paths as item_to_python.
            if type(member) is dict and len(member) == 1:
                payload = member.get("S", member)
                if payload is not member:
                    if type(payload) is str:
                        append(payload)
                        continue
                else:
                    payload = member.get("N", member)
                    if payload is not member:
                        if type(payload) is str:
                            number = create_number(payload)
                            if number.is_finite():
                                append(number)
                                continue
                    else:
                        payload = member.get("M", member)
                        if payload is not member:
                            append(_item_to_python(payload, inner))
                            continue
                        payload = member.get("L", member)
                        if payload is not member:
                            append(_python_list(payload, inner))
                            continue
            append(_python_value(member, level))
        except InvalidAttribute as error:
            error.path.append(len(out))  # the index of the member that failed
            raise
        except _CONVERSION_ERRORS as error:
            raise _explain(error, member, len(out)) from error
    return out


def _python_value(value: object, level: int = 1) -> Any:
    """One attribute value at `level` (a top-level attribute is level 1)."""
    tag, payload = _tagged(value)
    if tag == "S":
        return _string(payload)
    if tag == "N":
        return parse_number(payload)
    if tag == "M":
        return _item_to_python(payload, level + 1)
    if tag == "L":
        return _python_list(payload, level + 1)
    if tag == "BOOL":
        return _bool(payload)
    if tag == "NULL":
        return _null(payload)
    if tag == "B":
        return _binary(payload)
    if tag == "SS" or tag == "NS" or tag == "BS":
        return _set_value(tag, payload)
    raise InvalidAttribute(_unknown_tag(tag))


def value_to_python(value: object) -> Any:
    """One attribute value (`{"TAG": payload}`) as a native Python value."""
    try:
        return _python_value(value)
    except _CONVERSION_ERRORS as error:
        raise _explain(error, value, None) from error


def native_parse_change() -> Callable[[bytes], dict[str, Any] | None] | None:
    """The C one-pass parser of whole destination records (used by kinesis.py), configured
    like the converters above, or None without the extension."""
    return None if _speedups is None else _speedups.parse_change


def native_parse_envelope() -> Callable[[bytes], dict[str, Any] | None] | None:
    """The C parser of a destination record's envelope, its item images checked but not built
    (used by kinesis.py's envelope path), or None without the extension."""
    return None if _speedups is None else _speedups.parse_envelope


def native_regular_keys() -> Callable[[WireItem], bool] | None:
    """The C test of typed-JSON Keys (one or two values tagged S, N or B; used by
    kinesis.py's envelope path), or None without the extension."""
    return None if _speedups is None else _speedups.regular_keys


# --- JSON view ------------------------------------------------------------------------------


def item_to_json(item: object) -> JsonItem:
    """An item (or M value) as JSON-native values; numbers exact (JsonNumber)."""
    if _native_json is not None:
        converted = _native_json(item)
        if converted is not None:
            return converted
    return _item_to_json(item)


def _item_to_json(item: object, level: int = 1) -> JsonItem:
    out: JsonItem = {}
    mapping = _map(item)
    if level > MAX_LEVEL:
        _too_deep(level, mapping)
    for name, value in mapping.items():
        try:
            if type(value) is dict and len(value) == 1:
                payload = value.get("S", value)
                if payload is not value and type(payload) is str:
                    out[name] = payload
                    continue
            out[name] = _json_value(value, level)
        except InvalidAttribute as error:
            error.path.append(name)
            raise
        except _CONVERSION_ERRORS as error:
            raise _explain(error, value, name) from error
    return out


def _json_list(value: object, level: int) -> list[Any]:
    out: list[Any] = []
    members = _list(value, "L")
    if level > MAX_LEVEL:
        _too_deep(level, members)
    for index, member in enumerate(members):
        try:
            out.append(_json_value(member, level))
        except InvalidAttribute as error:
            error.path.append(index)
            raise
        except _CONVERSION_ERRORS as error:
            raise _explain(error, member, index) from error
    return out


def _json_value(value: object, level: int = 1) -> Any:
    tag, payload = _tagged(value)
    if tag == "S":
        return _string(payload)
    if tag == "N":
        return JsonNumber(_number_text(payload))
    if tag == "M":
        return _item_to_json(payload, level + 1)
    if tag == "L":
        return _json_list(payload, level + 1)
    if tag == "BOOL":
        return _bool(payload)
    if tag == "NULL":
        return _null(payload)
    if tag == "B":
        return _binary_text(payload)
    if tag == "SS" or tag == "NS" or tag == "BS":
        return _json_set(tag, payload)
    raise InvalidAttribute(_unknown_tag(tag))


def _json_set(tag: str, payload: object) -> list[Any]:
    """A set as a list in the order received, checked like the python view's: JsonNumbers
    compare by value, and canonical base64 text is equal exactly when the bytes are."""
    members: list[Any]
    if tag == "SS":
        members = list(_string_list(payload, tag))
    else:
        convert = _json_number if tag == "NS" else _binary_text
        members = _converted_members(convert, _set_members(payload, tag))
    if len(set(members)) != len(members):
        raise _repeated(members, tag)
    return members


def value_to_json(value: object) -> Any:
    """One attribute value (`{"TAG": payload}`) as a JSON-native value."""
    try:
        return _json_value(value)
    except _CONVERSION_ERRORS as error:
        raise _explain(error, value, None) from error


def _number_text(value: object) -> str:
    if type(value) is str:
        return value
    raise InvalidAttribute(f"a number must be a string, not {_kind(value)}")


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
    out: WireItem | None = None
    for name, value in source.items():
        try:
            converted = _client_value(value, level)
        except InvalidAttribute as error:
            error.path.append(name)
            raise
        except _CONVERSION_ERRORS as error:
            raise _explain(error, value, name) from error
        if converted is not value:
            if out is None:
                out = dict(source)
            out[name] = converted
    return source if out is None else out


def _client_list(value: object, level: int) -> list[Any]:
    source = _list(value, "L")
    if level > MAX_LEVEL:
        _too_deep(level, source)
    out: list[Any] | None = None
    for index, member in enumerate(source):
        try:
            converted = _client_value(member, level)
        except InvalidAttribute as error:
            error.path.append(index)
            raise
        except _CONVERSION_ERRORS as error:
            raise _explain(error, member, index) from error
        if converted is not member:
            if out is None:
                out = list(source)
            out[index] = converted
    return source if out is None else out


def _client_value(value: object, level: int) -> Any:
    tag, payload = _tagged(value)
    if tag == "S":
        _string(payload)
    elif tag == "N":
        parse_number(payload)
    elif tag == "M":
        converted = _item_to_client(payload, level + 1)
        if converted is not payload:
            return {"M": converted}
    elif tag == "L":
        members = _client_list(payload, level + 1)
        if members is not payload:
            return {"L": members}
    elif tag == "BOOL":
        _bool(payload)
    elif tag == "NULL":
        _null(payload)
    elif tag == "B":
        if type(payload) is not bytes:
            return {"B": _binary(payload)}
    elif tag == "SS" or tag == "NS":
        _set_value(tag, payload)
    elif tag == "BS":
        _set_value(tag, payload)
        members = _list(payload, tag)
        if any(type(member) is not bytes for member in members):
            return {"BS": [_binary(member) for member in members]}
    else:
        raise InvalidAttribute(_unknown_tag(tag))
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
