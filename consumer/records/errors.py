"""The one error a bad change record raises."""

from __future__ import annotations

from consumer.records.position import RecordPosition


class DecodeError(Exception):
    """A record that is not a valid DynamoDB change: bad JSON, missing or mistyped fields,
    unknown type tags or event names, invalid numbers or base64, a corrupt KPL aggregate.

    Every decoder and every lazy image view raises only this for bad input, so a worker can
    catch it per record and route the record to the dead-letter queue instead of crashing.
    `position` says where the record sits in its stream; `raw` is the record's payload when
    known (empty otherwise), so the dead-letter message can carry it.
    """

    def __init__(self, position: RecordPosition, reason: str, raw: bytes = b"") -> None:
        super().__init__(position, reason, raw)
        self.position = position
        self.reason = reason
        self.raw = raw

    def __str__(self) -> str:
        return f"{self.position}: {self.reason}"


class InvalidAttribute(Exception):
    """An attribute value that is not valid DynamoDB typed JSON.

    Raised by the attribute converters (`item_to_python`, `value_to_json`, ...), which know no
    record position; Image views turn it into a DecodeError. `path` names where the value sits
    (attribute names and list indexes), innermost first because it is filled in while the
    error unwinds; `where` renders it outermost first, as `['order']['lines'][1]`.
    """

    def __init__(self, reason: str, path: list[str | int] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str | int] = [] if path is None else path

    @property
    def where(self) -> str:
        return "".join(f"[{step!r}]" for step in reversed(self.path))


class InvalidRecord(Exception):
    """A record envelope that is not a DynamoDB change (internal to this package).

    Decoders turn it into a DecodeError carrying the record's position.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
