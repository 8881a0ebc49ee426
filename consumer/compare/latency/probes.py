"""The probe item: a new item in the source table that carries its own write time (`probe_tag`
"<run id>/<mode>/<phase>", so runs and modes never mix, `probe_seq`, `probe_written_us` taken
just before the PutItem), with a key for any key schema (`ProbeKeys`); and how to find it again.
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from consumer.records import ChangeEvent, DecodeError
from consumer.verify.replica_side import key_schema

PROBE_TAG = "probe_tag"
PROBE_SEQ = "probe_seq"
PROBE_WRITTEN_US = "probe_written_us"

KeyType = Literal["S", "N", "B"]
Item = dict[str, Any]
WallClockUs = Callable[[], int]


def wall_us() -> int:
    """Now, in epoch microseconds (the system clock, as Kinesis arrival times are): the one
    clock that probe write times and apply times are both read from."""
    return time.time_ns() // 1000


class Phase(enum.StrEnum):
    """Warm-up probes wait for the worker to be reading; measured probes are reported."""

    WARMUP = "warmup"
    MEASURE = "measure"


@dataclass(frozen=True)
class ProbeTag:
    """Which run, mode and phase a probe belongs to."""

    run_id: str
    mode: str
    phase: Phase

    def __str__(self) -> str:
        return f"{self.run_id}/{self.mode}/{self.phase}"


@dataclass(frozen=True, slots=True)
class ProbeStamp:
    """What a probe's change says about it: its tag (as text), number and write time."""

    tag: str
    seq: int
    written_us: int


def probe_attributes(tag: ProbeTag, seq: int, written_us: int) -> Item:
    """The probe's non-key attributes, in DynamoDB typed JSON."""
    return {
        PROBE_TAG: {"S": str(tag)},
        PROBE_SEQ: {"N": str(seq)},
        PROBE_WRITTEN_US: {"N": str(written_us)},
    }


def read_probe(event: ChangeEvent) -> ProbeStamp | None:
    """The probe stamp of a change whose new image is a probe; None for any other change
    (a REMOVE, an item without the probe attributes, an image that cannot be read)."""
    image = event.new_image
    if image is None:
        return None
    try:
        wire = image.wire
    except DecodeError:
        return None
    tag = _typed(wire, PROBE_TAG, "S")
    seq = _typed(wire, PROBE_SEQ, "N")
    written = _typed(wire, PROBE_WRITTEN_US, "N")
    if tag is None or seq is None or written is None:
        return None
    try:
        return ProbeStamp(tag=tag, seq=int(seq), written_us=int(written))
    except ValueError:
        return None


def _typed(wire: Mapping[str, Any], name: str, kind: str) -> str | None:
    value = wire.get(name)
    if not isinstance(value, dict):
        return None
    inner = value.get(kind)
    return inner if isinstance(inner, str) else None


@dataclass(frozen=True)
class KeyAttribute:
    name: str
    type: KeyType


@dataclass(frozen=True)
class ProbeKeys:
    """Builds probe keys for a table's key schema.

    An S key is "latency-probe#<tag>#<seq>"; a B key the same text as bytes; an N key a
    negative number derived from that text (a hash: a clash with a real item is unlikely, and
    the writer's condition refuses to overwrite one). A sort key gets the same value.
    """

    partition: KeyAttribute
    sort: KeyAttribute | None = None

    @classmethod
    def from_table(cls, table_description: Mapping[str, Any]) -> ProbeKeys:
        """From DescribeTable's `Table`."""
        schema = key_schema(table_description)  # the hash key first
        if not schema or schema[0][1] != "HASH":
            raise ValueError("the table description has no HASH key")
        return cls(*(KeyAttribute(name, _key_type(name, kind)) for name, _, kind in schema))

    @staticmethod
    def label(tag: ProbeTag, seq: int) -> str:
        return f"latency-probe#{tag}#{seq}"

    def key(self, tag: ProbeTag, seq: int) -> Item:
        label = self.label(tag, seq)
        key = {self.partition.name: _value(self.partition.type, label)}
        if self.sort is not None:
            key[self.sort.name] = _value(self.sort.type, label)
        return key


def _key_type(name: str, kind: str) -> KeyType:
    if kind not in ("S", "N", "B"):
        raise ValueError(f"key attribute {name} has type {kind!r}")
    return cast(KeyType, kind)


def _value(kind: KeyType, label: str) -> dict[str, Any]:
    if kind == "S":
        return {"S": label}
    if kind == "B":
        return {"B": label.encode()}
    digest = int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big")
    return {"N": f"-{digest}"}
