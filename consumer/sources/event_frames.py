"""Encoding of AWS event-stream messages (the binary framing SubscribeToShard uses).

botocore only decodes this framing. We encode it to supply the `initial-response` event
kinesis-mock omits (see initial_response.py); tests build fake SubscribeToShard streams with it.
"""

from __future__ import annotations

import struct
from binascii import crc32

_PRELUDE_LENGTH = 12
_STRING_HEADER = 7  # the header value type of a string


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One complete event-stream message: prelude, prelude CRC, headers, payload, message CRC.
    A header is a string: its name's length and name, its type, its value's length and value."""
    header_bytes = b""
    for name, value in headers.items():
        name_bytes, value_bytes = name.encode(), value.encode()
        header_bytes += struct.pack(
            f"!B{len(name_bytes)}sBH", len(name_bytes), name_bytes, _STRING_HEADER, len(value_bytes)
        )
        header_bytes += value_bytes
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
