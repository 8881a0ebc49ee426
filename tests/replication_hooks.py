"""Transform hooks used by the replication tests (named in settings as module:function)."""

from __future__ import annotations

from typing import Any

from consumer.records import ChangeEvent


def upper_note(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any] | None:
    if event.keys.python["pk"] == "skip-me":
        return None
    note = event.new_image.python.get("note") if event.new_image else None
    if note is not None:
        item = {**item, "note": {"S": str(note).upper()}}
    return item


def explode_on_bad(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any] | None:
    if event.keys.python["pk"] == "bad":
        raise RuntimeError("cannot transform this one")
    return item


def explode_on_poison_note(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any] | None:
    """Refuses any change whose new image has note = "poison" (a hook's own poison record)."""
    if item.get("note") == {"S": "poison"}:
        raise ValueError("this change cannot be transformed")
    return item


def mistype_bad(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any] | None:
    """Returns an item DynamoDB's API model refuses (an S value that is a number) for "bad"."""
    if event.keys.python["pk"] == "bad":
        return {**item, "note": {"S": 5}}
    return item
