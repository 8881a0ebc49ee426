"""The audit line: one change as one line of NDJSON.

```
{"event_id":"…","event_name":"MODIFY","table":"orders","region":"us-east-1",
 "created_at":"2024-07-03T22:41:26.486729Z","created_at_us":1720046486486729,
 "ttl_delete":false,"stream":"…","shard_id":"shardId-000000000001",
 "sequence_number":"4965…","sub_sequence_number":0,"arrival_time":"2024-07-03T22:41:27.123000Z",
 "change":{…the change record exactly as read…}}\n
```

(one line in the object; wrapped here). Times are ISO 8601 UTC with microseconds;
`created_at` is the record's ApproximateCreationDateTime, `arrival_time` the Kinesis
ApproximateArrivalTimestamp (null where the source has none: DynamoDB Streams, Lambda).

`change` is `ChangeEvent.raw` embedded verbatim around the orjson-encoded metadata: never
re-encoded (exact digits, one copy). Only CR and LF bytes become spaces: in valid JSON they
can only be whitespace between tokens, so the value is the same and the line stays one line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

import orjson

from consumer.records import ChangeEvent, DecodeError

# The line's top-level fields, in the order they are written (the Athena DDL declares them).
LINE_FIELDS = (
    "event_id",
    "event_name",
    "table",
    "region",
    "created_at",
    "created_at_us",
    "ttl_delete",
    "stream",
    "shard_id",
    "sequence_number",
    "sub_sequence_number",
    "arrival_time",
    "change",
)

_CHANGE = b',"change":'
_END = b"}\n"
_US = 1_000_000


class LineError(ValueError):
    """The event cannot be written as an audit line (its raw payload is not a JSON object).
    The message names the problem, never the payload's contents."""


def audit_line(event: ChangeEvent, *, verify_json: bool = True) -> bytes:
    """The event's audit line, ending in b"\\n". Raises LineError for an event whose raw
    payload cannot be embedded. With `verify_json=False` the payload is only checked to look
    like one JSON object ("{…}"), not parsed."""
    change = _embeddable(event, verify_json)
    position = event.position
    arrival_ms = position.arrival_ms
    try:
        head = orjson.dumps(
            {
                "event_id": event.event_id,
                "event_name": event.event_name.value,
                "table": event.table,
                "region": event.region,
                "created_at": iso_utc_us(event.created_at_us),
                "created_at_us": event.created_at_us,
                "ttl_delete": event.ttl_delete,
                "stream": position.stream,
                "shard_id": position.shard_id,
                "sequence_number": position.sequence_number,
                "sub_sequence_number": position.sub_sequence_number,
                "arrival_time": None if arrival_ms is None else iso_utc_us(arrival_ms * 1000),
            }
        )
    except (orjson.JSONEncodeError, OverflowError, OSError, ValueError) as error:
        raise LineError(f"the event's metadata cannot be written: {error}") from None
    # head is '{…}': drop its closing brace and append the change and our own.
    return b"".join((head[:-1], _CHANGE, change, _END))


def iso_utc_us(us: int) -> str:
    """Epoch microseconds as ISO 8601 UTC with microseconds, `2024-07-03T22:41:26.486729Z`
    (the same text as `consumer.records.iso_utc`, several times faster: records of one batch
    mostly share their second, whose text is cached)."""
    second, micro = divmod(us, _US)
    return f"{_second_text(second)}.{micro:06d}Z"


@lru_cache(maxsize=4096)
def _second_text(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _embeddable(event: ChangeEvent, verify_json: bool) -> bytes:
    raw: object = event.raw
    if type(raw) is not bytes:
        if not isinstance(raw, bytearray | memoryview):
            raise LineError(f"the raw payload is a {type(raw).__name__}, not bytes")
        raw = bytes(raw)
    if verify_json:
        # The parse that filters and image views share (no parse of its own) decides; when it
        # refuses the payload, plain JSON does (a record that breaks a decode rule such as a
        # repeated key is still JSON, and is audited).
        try:
            event.record()
        except DecodeError:
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                raise LineError(f"the raw payload is not JSON: {error}") from None
            if type(parsed) is not dict:
                kind = type(parsed).__name__
                raise LineError(f"the raw payload is a JSON {kind}, not an object") from None
    else:
        stripped = raw.strip()
        if not (stripped.startswith(b"{") and stripped.endswith(b"}")):
            raise LineError("the raw payload is not a JSON object")
    if b"\n" in raw or b"\r" in raw:
        raw = raw.replace(b"\r", b" ").replace(b"\n", b" ")
    return raw
