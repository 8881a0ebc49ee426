"""Encoding of AWS event-stream messages (the binary framing SubscribeToShard uses).

botocore only decodes this framing. We encode it to supply the `initial-response` event
kinesis-mock omits (see initial_response.py); tests build fake SubscribeToShard streams with it.
"""

from __future__ import annotations

import struct
from binascii import crc32

_PRELUDE_LENGTH = 12
_STRING_HEADER_TYPE = 7


def _encode_headers(headers: dict[str, str]) -> bytes:
    parts: list[bytes] = []
    for name, value in headers.items():
        name_bytes = name.encode()
        value_bytes = value.encode()
        parts.append(struct.pack("!B", len(name_bytes)))
        parts.append(name_bytes)
        parts.append(struct.pack("!BH", _STRING_HEADER_TYPE, len(value_bytes)))
        parts.append(value_bytes)
    return b"".join(parts)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One complete event-stream message: prelude, prelude CRC, headers, payload, message CRC."""
    header_bytes = _encode_headers(headers)
    total_length = _PRELUDE_LENGTH + len(header_bytes) + len(payload) + 4
    prelude = struct.pack("!II", total_length, len(header_bytes))
    prelude += struct.pack("!I", crc32(prelude) & 0xFFFFFFFF)
    body = prelude + header_bytes + payload
    return body + struct.pack("!I", crc32(body) & 0xFFFFFFFF)


def encode_event(event_type: str, payload: bytes, content_type: str = "application/json") -> bytes:
    return encode_message(
        {":message-type": "event", ":event-type": event_type, ":content-type": content_type},
        payload,
    )


def message_length(buffer: bytes) -> int | None:
    """The total length of the first message in `buffer`, or None if the prelude is incomplete."""
    if len(buffer) < 4:
        return None
    return int(struct.unpack("!I", buffer[:4])[0])


def event_type_of(message: bytes) -> str | None:
    """The `:event-type` header of one complete message (None if it has none)."""
    headers_length = struct.unpack("!I", message[4:8])[0]
    position = _PRELUDE_LENGTH
    end = _PRELUDE_LENGTH + headers_length
    while position < end:
        name_length = message[position]
        name = message[position + 1 : position + 1 + name_length].decode()
        position += 1 + name_length
        value_type = message[position]
        position += 1
        if value_type != _STRING_HEADER_TYPE:
            return None  # not a header shape AWS uses for :event-type; stop looking
        (value_length,) = struct.unpack("!H", message[position : position + 2])
        position += 2
        value = message[position : position + value_length].decode()
        position += value_length
        if name == ":event-type":
            return value
    return None
