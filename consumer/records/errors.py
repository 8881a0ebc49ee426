"""The one error a bad change record raises."""

from __future__ import annotations

from consumer.records.position import RecordPosition


class DecodeError(Exception):
    """A record that is not a valid DynamoDB change (bad JSON, fields, type tags, numbers,
    base64, a corrupt KPL aggregate): the only error decoders and image views raise for bad
    input, so a worker parks the record instead of crashing. `raw` is its payload when known
    (else empty), for the dead-letter message."""

    def __init__(self, position: RecordPosition, reason: str, raw: bytes = b"") -> None:
        super().__init__(position, reason, raw)
        self.position = position
        self.reason = reason
        self.raw = raw

    def __str__(self) -> str:
        return f"{self.position}: {self.reason}"


class InvalidAttribute(Exception):
    """An attribute value that is not valid DynamoDB typed JSON (from the converters, which
    know no position; Image views turn it into a DecodeError). `path` (attribute names, list
    indexes) is innermost first, filled in while the error unwinds; `where` renders it
    outermost first, as `['order']['lines'][1]`."""

    def __init__(self, reason: str, path: list[str | int] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str | int] = [] if path is None else path

    @property
    def where(self) -> str:
        return "".join(f"[{step!r}]" for step in reversed(self.path))


class InvalidRecord(Exception):
    """A record envelope that is not a DynamoDB change (internal: decoders turn it into a
    DecodeError with the record's position)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
