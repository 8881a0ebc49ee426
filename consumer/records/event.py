"""The decoded change: one typed, immutable event per DynamoDB item change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, TypeAlias

import orjson

from consumer.records.errors import DecodeError
from consumer.records.image import Image
from consumer.records.ordering import ABSENT, UNKNOWN, Transition
from consumer.records.position import RecordPosition
from consumer.records.slots import slot_builder

# The parsed change record, or a function returning it (parsing on first use).
RecordSource: TypeAlias = dict[str, Any] | Callable[[], dict[str, Any]]


class EventName(StrEnum):
    """What happened to the item."""

    INSERT = "INSERT"
    MODIFY = "MODIFY"
    REMOVE = "REMOVE"


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change to one DynamoDB item, as read from a stream.

    - `new_image` is present on INSERT and MODIFY, `old_image` on MODIFY and REMOVE, each when
      the stream carries it (a Streams view type may not).
    - `created_at_us`: ApproximateCreationDateTime in epoch microseconds, whatever the
      record's precision; the item's version for sinks (`version`).
    - `ttl_delete`: a REMOVE by DynamoDB's TTL process (userIdentity is DynamoDB's principal).
    - `size`: the record's SizeBytes, else the payload's length in bytes.
    - `raw`: the payload as read (a Streams record dict's wire JSON), for audit and the DLQ.
    """

    event_id: str
    event_name: EventName
    table: str
    region: str
    keys: Image
    new_image: Image | None
    old_image: Image | None
    created_at_us: int
    ttl_delete: bool
    size: int
    position: RecordPosition
    raw: bytes = field(repr=False)
    # `raw` parsed (a dict), or what parses it once: see `record()`.
    _record: RecordSource | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def version(self) -> int:
        """The item version sinks keep the newest of: `created_at_us`."""
        return self.created_at_us

    @property
    def transition(self) -> Transition:
        """The item states this change connects (digests of its OldImage and NewImage, ABSENT
        for no item), to decide ties in `version` (see `consumer.records.ordering`)."""
        if self.event_name is EventName.INSERT:
            before = ABSENT
        else:
            before = self.old_image.state if self.old_image is not None else UNKNOWN
        if self.event_name is EventName.REMOVE:
            after = ABSENT
        else:
            after = self.new_image.state if self.new_image is not None else UNKNOWN
        try:
            sequence = self.position.sequence_key
        except ValueError:  # not from a stream (no numeric sequence number): first in order
            sequence = (-1, 0)
        return Transition(before, after, sequence)

    @property
    def images(self) -> tuple[Image, ...]:
        """Keys, then the new and old images that are present."""
        return tuple(
            image for image in (self.keys, self.new_image, self.old_image) if image is not None
        )

    def record(self) -> dict[str, Any]:
        """The change record as JSON values (`raw` parsed once, the parse the images' views
        share with Kinesis decoders), for filters; read-only. Raises DecodeError if `raw` is
        not a JSON object (or breaks a decode rule)."""
        source = self._record
        if isinstance(source, dict):
            return source
        parsed: dict[str, Any]
        if source is None:
            try:
                loaded: object = orjson.loads(self.raw)
            except orjson.JSONDecodeError as error:
                raise DecodeError(self.position, f"not JSON: {error}", self.raw) from None
            if type(loaded) is not dict:
                raise DecodeError(self.position, "not a JSON object", self.raw)
            parsed = loaded
        else:
            parsed = source()  # the loader the decoder gave
        object.__setattr__(self, "_record", parsed)  # a cache: the event stays the same
        return parsed

    def validate(self) -> None:
        """Raise DecodeError now for anything a view would raise later: computes the python
        view of the new image, then of the old image and keys sharing what is equal to it."""
        first = self.new_image or self.old_image
        if first is not None:
            first.validate()
            for image in (self.old_image, self.keys):
                if image is not None and image is not first:
                    image.share_with(first)
                    image.validate()
        else:
            self.keys.validate()

    def __hash__(self) -> int:
        return hash((self.position, self.event_id))


# ChangeEvent(...) for decoders (see slots.py): the same event, built faster, every field set
# in field order; the last, `record`, is `raw` already parsed or the function that parses it
# (shared with the images' views), for `ChangeEvent.record()`.
new_event: Callable[
    [
        str,
        EventName,
        str,
        str,
        Image,
        Image | None,
        Image | None,
        int,
        bool,
        int,
        RecordPosition,
        bytes,
        RecordSource | None,
    ],
    ChangeEvent,
] = slot_builder(ChangeEvent, tuple(each.name for each in fields(ChangeEvent)))
