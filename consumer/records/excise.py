"""Cut the item images out of a change record's JSON, so its envelope parses without them.

Most of a change record is its NewImage and OldImage, and building their Python objects is
most of the cost of parsing it; many sinks never look at them (audit keeps raw bytes) or look
only later. `split_images` finds the byte span of each image's value without parsing it and
returns the record with each span replaced by a sentinel string. The caller parses that small
envelope and keeps the spans to parse on demand.

Why the result is exact, not a guess:

1. A sentinel is the JSON string "\\u0001NewImage" (or ...OldImage). Records containing a
   `\\u` escape are not split (None: parse the whole record), so the sentinel's text can only
   come from the sentinel put in, and every key is spelled literally. After parsing, `verify`
   checks that `dynamodb.NewImage` (resp. OldImage) of the parsed envelope is exactly its
   sentinel: the cut started exactly where that value starts, in the object the parser uses
   (duplicate keys included), because the bytes before the cut are the record's own.
2. A span ends at a delimiter (`,` or the `}` closing `dynamodb`, after optional whitespace).
   So the record equals the envelope with the span in the sentinel's place, and the record is
   valid JSON with that image value if and only if the span parses on its own as one complete
   value. That is checked when the span is parsed (Image.wire); if it does not parse (invalid
   JSON, or a span that ran past the value into members this module does not know), the whole
   record is parsed and is the authority.
3. A span ends at the nearest following member of `dynamodb` that a decoder reads (keys are
   spelled literally, so none is missed), so no member a decoder uses is ever cut away with an
   image: a wrong cut can only fail one of the checks above and fall back to a full parse,
   never change a decoded field. Key order, whitespace and attribute names that collide with
   these keys only cost the fast path.
"""

from __future__ import annotations

import re
from typing import TypeAlias

NEW_IMAGE = "NewImage"
OLD_IMAGE = "OldImage"
NEW_SENTINEL = "\x01NewImage"
OLD_SENTINEL = "\x01OldImage"
_NEW_JSON = b'"\\u0001NewImage"'
_OLD_JSON = b'"\\u0001OldImage"'
_NEW_MARKER = b'"NewImage":'
_OLD_MARKER = b'"OldImage":'
_MARKER_LENGTH = len(_NEW_MARKER)  # both markers are as long

# Members of `dynamodb` that any decoder reads: a span never runs past one of them.
_NEXT_BODY_MEMBER = re.compile(
    rb',\s*"(?:Keys|NewImage|OldImage|SizeBytes|ApproximateCreationDateTime'
    rb"|ApproximateCreationDateTimePrecision|SequenceNumber|StreamViewType)\"\s*:"
)
# Top-level members any decoder reads: when the image is the last member of `dynamodb`, its
# span ends at the `}` before the nearest of these (or before the record's closing brace).
_NEXT_RECORD_MEMBER = re.compile(
    rb',\s*"(?:awsRegion|eventID|eventName|eventSource|eventVersion|eventSourceARN'
    rb'|recordFormat|tableName|userIdentity|dynamodb)"\s*:'
)
_WHITESPACE = b" \t\r\n"


# (envelope, NewImage (start, end), OldImage (start, end)); (-1, -1) for an image not cut.
Split: TypeAlias = tuple[bytes, int, int, int, int]


def verify(envelope: object, new_start: int, old_start: int) -> bool:
    """Whether the parsed `envelope` has each sentinel exactly where its image was cut."""
    if type(envelope) is not dict:
        return False
    body = envelope.get("dynamodb")
    if type(body) is not dict:
        return False
    if new_start >= 0 and body.get(NEW_IMAGE) != NEW_SENTINEL:
        return False
    return old_start < 0 or body.get(OLD_IMAGE) == OLD_SENTINEL


def split_images(data: bytes) -> Split | None:
    """`data` with its NewImage/OldImage values cut out, or None to parse it whole.

    None when there is nothing to cut or the spans cannot be found cheaply and safely.
    The caller must parse the envelope and check `verify` before trusting the spans.
    """
    if b"\\" in data and b"\\u" in data:
        return None
    new_start = new_end = old_start = old_end = -1
    found = data.find(_NEW_MARKER)
    # Only an object value is cut: null, or a value after whitespace, stays in the envelope.
    if found >= 0 and data[found + _MARKER_LENGTH : found + _MARKER_LENGTH + 1] == b"{":
        new_start = found + _MARKER_LENGTH
        new_end = _value_end(data, new_start)
        if new_end <= new_start:
            return None
    found = data.find(_OLD_MARKER)
    if found >= 0 and data[found + _MARKER_LENGTH : found + _MARKER_LENGTH + 1] == b"{":
        old_start = found + _MARKER_LENGTH
        old_end = _value_end(data, old_start)
        if old_end <= old_start:
            return None
    if old_start < 0:
        if new_start < 0:
            return None
        envelope = b"".join((data[:new_start], _NEW_JSON, data[new_end:]))
    elif new_start < 0:
        envelope = b"".join((data[:old_start], _OLD_JSON, data[old_end:]))
    elif new_end <= old_start:
        envelope = b"".join(
            (data[:new_start], _NEW_JSON, data[new_end:old_start], _OLD_JSON, data[old_end:])
        )
    elif old_end <= new_start:
        envelope = b"".join(
            (data[:old_start], _OLD_JSON, data[old_end:new_start], _NEW_JSON, data[new_end:])
        )
    else:
        return None
    return envelope, new_start, new_end, old_start, old_end


def _value_end(data: bytes, start: int) -> int:
    """Where the `dynamodb` member value starting at `start` ends (exclusive), or -1."""
    found = _NEXT_BODY_MEMBER.search(data, start)
    if found is not None:
        return found.start()
    # The last member of `dynamodb`: the value ends before the `}` that closes `dynamodb`,
    # which comes before the next top-level member or the record's own closing brace.
    found = _NEXT_RECORD_MEMBER.search(data, start)
    if found is not None:
        end = found.start()
    else:
        end = len(data.rstrip(_WHITESPACE))
        if end == 0 or data[end - 1] != ord("}"):
            return -1
        end -= 1
    end = len(data[:end].rstrip(_WHITESPACE))
    if end == 0 or data[end - 1] != ord("}"):
        return -1
    return end - 1
