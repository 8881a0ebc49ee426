"""Each record is parsed once: filters, the image views and every sink's state digests share it
(issue 19, target 1: "filters, sinks and views share the parse")."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from consumer.pipeline.audit.lines import LineError, audit_line
from consumer.pipeline.filters import RecordFilter
from consumer.records import ChangeEvent, RecordPosition, decode_destination_record
from consumer.records.ordering import state_digest
from tests.bench.bench_e2e import record
from tests.unit.test_records_strategies import ITEMS, base64_binaries, serialize

POSITION = RecordPosition(
    "stream", "shardId-000000000000", "49590338271490256608559692538361571095921575989136588898"
)


class RememberingFilter(RecordFilter):
    """A filter that keeps the record it was given to match."""

    seen: list[Mapping[str, Any]]

    def matches(self, record: Mapping[str, Any]) -> bool:
        self.seen.append(record)
        return super().matches(record)


def remembering(pattern: dict[str, Any]) -> RememberingFilter:
    record_filter = RememberingFilter([pattern])
    record_filter.seen = []
    return record_filter


def decoded(data: bytes) -> ChangeEvent:
    return decode_destination_record(data, POSITION)


def test_a_filter_matches_the_parse_that_the_image_views_use() -> None:
    event = decoded(record(7))
    record_filter = remembering({"dynamodb": {"NewImage": {"status": {"S": ["SHIPPED"]}}}})
    assert record_filter.selects(event)
    [seen] = record_filter.seen
    # The very objects the sinks convert from: no second parse of the payload.
    assert seen["dynamodb"]["NewImage"] is event.new_image.wire  # type: ignore[union-attr]
    assert seen["dynamodb"]["OldImage"] is event.old_image.wire  # type: ignore[union-attr]
    assert event.record() is seen


def test_every_route_shares_the_one_parse() -> None:
    event = decoded(record(8))
    first = remembering({"eventName": ["MODIFY"]})
    second = remembering({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "customer#"}]}}}})
    assert first.selects(event) and second.selects(event)
    assert first.seen[0] is second.seen[0]


def test_a_filter_still_sees_a_record_with_a_repeated_key_as_json_reads_it() -> None:
    # A repeated attribute name breaks a decode rule that the image views enforce (the record
    # is then parked by the sinks), so the filter must not drop it unseen: it matches the
    # record as JSON readers read it (the last value).
    data = record(9).replace(
        b'"currency":{"S":"EUR"}', b'"currency":{"S":"EUR"},"currency":{"S":"USD"}', 1
    )
    event = decoded(data)
    usd = {"dynamodb": {"NewImage": {"currency": {"S": ["USD"]}}}}
    eur = {"dynamodb": {"NewImage": {"currency": {"S": ["EUR"]}}}}
    assert remembering(usd).selects(event)
    assert not remembering(eur).selects(event)


def test_the_state_digest_of_an_image_is_computed_once_for_all_sinks() -> None:
    event = decoded(record(10))
    first = event.transition
    again = event.transition  # another sink asks: the same digests, not computed again
    assert again.after is first.after and again.before is first.before
    assert first.after == state_digest(event.new_image.wire)  # type: ignore[union-attr]


def _reference_canonical(value: Any) -> Any:
    # The digest rule as first written (consumer.records.ordering, 2026-12-05): digests are
    # stored in replicas and indexes, so a faster walk must give the same bytes.
    if isinstance(value, Mapping):
        if len(value) == 1:
            ((kind, inner),) = value.items()
            if kind in ("SS", "NS", "BS") and isinstance(inner, list):
                return {kind: sorted(inner)}
        return {name: _reference_canonical(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [_reference_canonical(inner) for inner in value]
    return value


def _reference_digest(image: Mapping[str, Any]) -> str:
    encoded = orjson.dumps(_reference_canonical(image), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(encoded, digest_size=12).hexdigest()


@settings(max_examples=150, deadline=None)
@given(ITEMS)
def test_state_digests_are_unchanged_by_the_faster_walk(item: dict[str, Any]) -> None:
    wire = base64_binaries(serialize(item))
    parsed = orjson.loads(orjson.dumps(wire))
    assert state_digest(parsed) == _reference_digest(parsed)


def test_the_audit_line_checks_the_payload_with_the_shared_parse() -> None:
    event = decoded(record(11))
    assert type(event._record) is not dict  # not parsed yet
    line = audit_line(event)  # verify_json: is the payload a JSON object?
    assert line.endswith(b"}\n") and event.raw in line
    # The check went through the shared parse (now cached on the event), which the image
    # views then use: one parse for audit and the other sinks.
    assert type(event._record) is dict
    assert event.record()["dynamodb"]["NewImage"] is event.new_image.wire  # type: ignore[union-attr]


def test_the_audit_line_still_refuses_a_payload_that_is_not_an_object() -> None:
    event = dataclasses.replace(decoded(record(12)), raw=b"[1, 2]")
    with pytest.raises(LineError):
        audit_line(event)
