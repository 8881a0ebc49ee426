"""Text from records (item values, error messages quoting them) made safe for a terminal."""

from __future__ import annotations

import re

# C0 and C1 control characters and DEL: an item value holding ESC [ ... could move the cursor,
# rewrite earlier lines or set the window title of the operator's terminal. Unicode line and
# paragraph separators and bidirectional overrides could disguise a line just as well.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every control character shown as an escape (\\x1b, \\n, \\u202e)."""
    return _UNPRINTABLE.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    character = found.group()
    code = ord(character)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(character)
    return named or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def json_safe(line: str) -> str:
    """A JSON text with DEL, C1 controls and the separators/overrides above as \\u escapes.

    JSON encoders already escape C0 controls; the rest may appear raw, and in valid JSON they
    can only be inside strings, where a \\u escape means the same character."""
    return _UNPRINTABLE.sub(lambda found: f"\\u{ord(found.group()):04x}", line)
