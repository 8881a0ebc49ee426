"""Types of the C fast path of the python view (see _speedups.c and attribute.py)."""

from collections.abc import Callable
from typing import Any

def configure(
    create_number: Callable[[str], Any],
    decode_binary: Callable[[object], bytes],
    json_number: Callable[[str], Any],
    binary_text: Callable[[object], str],
    decimal_new: Callable[..., Any],
) -> None:
    """The number and binary converters every conversion uses."""

def parse_change(data: bytes) -> dict[str, Any] | None:
    """A destination record parsed, with dynamodb.Keys/NewImage/OldImage as python views; None
    for anything it does not handle or that is not valid."""

def layout(cls: type, names: tuple[str, ...]) -> object:
    """Where those slots of cls are, for build()."""

def build(layout: object, *values: object) -> Any:
    """An instance of the layout's class with those slot values (None for the slots past
    them), without its __init__."""

def parse_envelope(data: bytes) -> dict[str, Any] | None:
    """A destination record parsed, with dynamodb.Keys as typed JSON and each item image that is
    an object checked as JSON, not built, and given as `...`; None for anything irregular."""

def item_to_python(item: object) -> dict[str, Any] | None:
    """The python view of a regular item; None for anything irregular."""

def item_to_python_sharing(
    item: object, known_wire: dict[str, Any], known: dict[str, Any]
) -> dict[str, Any] | None:
    """item_to_python, reusing known[name] where item[name] == known_wire[name]; None if
    irregular."""

def item_to_json(item: object) -> dict[str, Any] | None:
    """The json view of a regular item; None for anything irregular."""

def item_to_client(item: object) -> dict[str, Any] | None:
    """The item itself if it is regular and holds no binary text (the client view); None
    otherwise."""

def parse_json(data: bytes) -> Any:
    """A JSON document as plain values (dict, list, str, int, bool, None); None for anything
    irregular: a duplicate key anywhere, a float, an integer over 18 digits, invalid JSON."""

def regular_keys(keys: object) -> bool:
    """Whether typed-JSON Keys are a primary key: one or two values tagged S, N or B."""
