"""Reading audit lines back into records the shard pipeline can replay.

A line is `{…metadata…,"change":<the change record exactly as read>}` (see
`consumer.pipeline.audit.lines`); `change` is always the last field, and the bytes between
`,"change":` and the line's closing brace are the raw record, byte for byte: no parse and
re-encode, so numbers keep their digits. (The first `,"change":` in a line is the separator:
in the metadata before it every quote inside a string is escaped.)

Each line becomes an `ArchivedRecord`, a `RawRecord` that also carries the record's
sub-sequence number, and `decode_archived` decodes it at the position the line names.
"""

from __future__ import annotations

import gzip
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import orjson

from consumer.records import ChangeEvent, DecodeError, RecordPosition, decode_destination_record
from consumer.records.batch import RawRecord

_CHANGE = b',"change":'


class LineFormatError(ValueError):
    """A line that is not an audit line (the message never holds the line's contents)."""


@dataclass(frozen=True, slots=True)
class ArchivedRecord(RawRecord):
    """A change record read back from the archive. `arrival_ms` is 0 where the line has no
    arrival time (Streams mode), `created_at_us` is the line's change time."""

    sub_sequence_number: int = 0
    created_at_us: int = 0
    event_id: str = ""
    stream: str = ""


def parse_line(line: bytes) -> ArchivedRecord:
    """One audit line as a record; LineFormatError if it is not one."""
    cut = line.find(_CHANGE)
    if cut < 0:
        raise LineFormatError("no change field")
    body = line.rstrip()
    if not body.endswith(b"}"):
        raise LineFormatError("the line does not end with '}'")
    try:
        head = orjson.loads(line[:cut] + b"}")
    except orjson.JSONDecodeError as error:
        raise LineFormatError(f"the metadata is not JSON: {error}") from None
    raw = body[cut + len(_CHANGE) : -1].strip()
    if not (raw.startswith(b"{") and raw.endswith(b"}")):
        raise LineFormatError("the change field is not a JSON object")
    try:
        arrival = head.get("arrival_time")
        return ArchivedRecord(
            data=raw,
            sequence_number=str(head["sequence_number"]),
            arrival_ms=_iso_ms(arrival) if arrival else 0,
            partition_key="",
            sub_sequence_number=int(head.get("sub_sequence_number") or 0),
            created_at_us=int(head["created_at_us"]),
            event_id=str(head["event_id"]),
            stream=str(head.get("stream") or ""),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise LineFormatError(f"bad metadata: {type(error).__name__} {error}") from None


def _iso_ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def read_object(body: bytes) -> tuple[list[ArchivedRecord], int]:
    """Every line of a gzip NDJSON object, in order, and the count of lines that are not
    audit lines. Raises LineFormatError if the body is not gzip."""
    try:
        text = gzip.decompress(body)
    except (OSError, EOFError) as error:
        raise LineFormatError(f"not a gzip object: {error}") from None
    records: list[ArchivedRecord] = []
    bad = 0
    for line in text.split(b"\n"):
        if not line.strip():
            continue
        try:
            records.append(parse_line(line))
        except LineFormatError:
            bad += 1
    return records, bad


def decode_archived(
    record: RawRecord, stream: str, shard_id: str
) -> list[ChangeEvent | DecodeError]:
    """A pipeline decoder for archived records: the change at the position its line names."""
    sub_sequence = record.sub_sequence_number if isinstance(record, ArchivedRecord) else 0
    position = RecordPosition(
        stream, shard_id, record.sequence_number, sub_sequence, record.arrival_ms or None
    )
    try:
        return [decode_destination_record(record.data, position)]
    except DecodeError as error:
        return [error]


class RecentIds:
    """Event ids seen lately, up to `capacity` (oldest forgotten first).

    The archive can hold a change twice (the destination delivered it twice, or a restarted
    consumer cut its objects differently); skipping the second copy saves sink writes. It is
    only an optimisation: every sink is idempotent and versioned, so a copy that slips past a
    full window changes nothing.
    """

    def __init__(self, capacity: int = 500_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, event_id: str) -> bool:
        """True the first time `event_id` is seen (within the window)."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True
