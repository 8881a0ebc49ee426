"""One item image of a change, with lazy, cached views."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from consumer.records.attribute import (
    JsonItem,
    PythonItem,
    WireItem,
    item_to_client,
    item_to_json,
    item_to_python,
    item_to_python_sharing,
)
from consumer.records.errors import DecodeError, InvalidAttribute
from consumer.records.ordering import state_digest
from consumer.records.position import RecordPosition
from consumer.records.slots import slot_builder

_T = TypeVar("_T")


class Image:
    """An item image (NewImage, OldImage) or the Keys of a change, in DynamoDB typed JSON.

    Views, computed on first access, cached and shared (read-only):

    - `wire`: the typed JSON as received (binary as base64 text, or bytes from boto3).
    - `python`: boto3's TypeDeserializer output (Decimal numbers, bytes, sets).
    - `json`: JSON-native values: `JsonNumber` (written with DynamoDB's digits by
      `to_json_bytes`), binary as base64 text, sets as lists.
    - `client`: typed JSON with binary as bytes; write items through boto3 with it, not
      `wire` (botocore base64-encodes binary values itself).

    python, json and client raise DecodeError (with the record's position) for an invalid
    image; `strict=True` decoding has checked already. Images are equal when their wires are.
    """

    __slots__ = (
        "_client",
        "_json",
        "_label",
        "_load",
        "_position",
        "_python",
        "_raw",
        "_reference",
        "_state",
        "_wire",
    )

    # The slots that start empty (see new_image).
    CACHES = ("_reference", "_python", "_json", "_client", "_state")

    _wire: WireItem | None
    _load: Callable[[], WireItem] | None
    _reference: Image | None
    _raw: bytes
    _position: RecordPosition
    _label: str
    _python: PythonItem | None
    _json: JsonItem | None
    _client: WireItem | None
    _state: str | None

    def __init__(
        self,
        wire: WireItem | None,
        position: RecordPosition,
        label: str = "Image",
        raw: bytes = b"",
        load: Callable[[], WireItem] | None = None,
        python: PythonItem | None = None,
    ) -> None:
        """An image of typed JSON `wire`, or parsed by `load` when first asked for. `label`
        names it in errors; `python`, when given, is its (validated) python view."""
        if wire is None and load is None:
            raise ValueError("an Image needs its typed JSON or a loader")
        self._wire = wire
        self._load = load
        self._reference = None
        self._raw = raw
        self._position = position
        self._label = label
        self._python = python
        self._json = None
        self._client = None
        self._state = None

    @property
    def label(self) -> str:
        """Which image this is: "Keys", "NewImage" or "OldImage"."""
        return self._label

    @property
    def wire(self) -> WireItem:
        wire = self._wire
        if wire is None:
            assert self._load is not None
            wire = self._wire = self._load()
        return wire

    def share_with(self, reference: Image) -> None:
        """Reuse `reference`'s python view for attributes whose typed JSON is equal to it: a
        MODIFY's images are mostly the same item, and an equality test is much cheaper than a
        conversion (which depends only on the typed JSON)."""
        self._reference = reference

    @property
    def python(self) -> PythonItem:
        value = self._python
        if value is None:
            reference = self._reference
            if reference is not None and reference._python is not None:
                known_wire = reference.wire
                known = reference._python
                value = self._python = self._convert(
                    lambda item: item_to_python_sharing(item, known_wire, known)
                )
            else:
                value = self._python = self._convert(item_to_python)
        return value

    @property
    def json(self) -> JsonItem:
        value = self._json
        if value is None:
            value = self._json = self._convert(item_to_json)
        return value

    @property
    def client(self) -> WireItem:
        value = self._client
        if value is None:
            value = self._client = self._convert(item_to_client)
        return value

    @property
    def state(self) -> str:
        """The digest of the item state this image shows (`ordering.state_digest`), computed
        once: every sink that keeps the newest change per key asks for it."""
        state = self._state
        if state is None:
            state = self._state = state_digest(self.wire)
        return state

    def validate(self) -> None:
        """Raise DecodeError now if any view would: computes (and caches) the python view,
        which checks everything the others check."""
        self.python  # noqa: B018  # computed for its checks; the result stays cached

    def _convert(self, convert: Callable[[WireItem], _T]) -> _T:
        wire = self.wire
        try:
            return convert(wire)
        except InvalidAttribute as error:
            raise self._error(f"{self._label}{error.where}: {error.reason}") from error
        except RecursionError as error:
            raise self._error(f"{self._label}: nested too deeply") from error

    def _error(self, reason: str) -> DecodeError:
        return DecodeError(self._position, reason, self._raw)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Image):
            return NotImplemented
        return self._label == other._label and self.wire == other.wire

    __hash__ = None  # type: ignore[assignment]  # caches make it mutable inside

    def __repr__(self) -> str:
        return f"Image({self._label}, {self.wire!r})"


# Image(wire, position, label, raw, load) for decoders (see slots.py): no checks (the decoder
# gives the typed JSON or its loader), the caches empty.
new_image: Callable[
    [WireItem | None, RecordPosition, str, bytes, Callable[[], WireItem] | None], Image
] = slot_builder(Image, ("_wire", "_position", "_label", "_raw", "_load", *Image.CACHES))
