"""The search index's fixed mapping and the searchable fields the sink adds to a document."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from consumer.pipeline.search.document import canonical_number, plan_writes
from consumer.pipeline.search.mapping import (
    IGNORE_ABOVE,
    INDEX_BODY,
    INDEX_MAPPINGS,
    indexed_document,
    mapping_problems,
    number_text,
)
from tests.change_factory import change, remove
from tests.unit.test_records_strategies import dynamodb_numbers

INDEX_FILE = Path(__file__).resolve().parents[2] / "infra" / "opensearch" / "index.json"


def indexed(event_name: str, new: dict[str, Any] | None = None) -> dict[str, Any]:
    event = change(event_name, "k1", 1_000, new=new) if new is not None else remove("k1", 1_000)
    (write,) = plan_writes([event]).writes
    return indexed_document(write)


def test_every_value_becomes_a_path_and_value_term() -> None:
    document = indexed(
        "INSERT",
        {
            "s": {"S": "shipped"},
            "n": {"N": "0.10"},
            "big": {"N": "12345678901234567890123456789012345678"},
            "e": {"N": "1.0E+3"},
            "b": {"B": "3q2+7w=="},
            "t": {"BOOL": True},
            "z": {"NULL": True},
            "ss": {"SS": ["x"]},
            "ns": {"NS": ["1E+125"]},
            "m": {"M": {"inner": {"L": [{"S": "deep"}, {"M": {"x": {"N": "2"}}}]}}},
        },
    )
    search = document["search"]
    assert search["keys"] == ["pk=k1"]
    assert set(search["values"]) == {
        "pk=k1",
        "s=shipped",
        "n=0.1",
        "big=12345678901234567890123456789012345678",
        "e=1000",
        "b=3q2+7w==",
        "t=true",
        "z=null",
        "ss=x",
        "ns=1E+125",
        "m.inner=deep",
        "m.inner.x=2",
    }
    assert sorted(search["text"]) == ["deep", "k1", "shipped", "x"]
    # The stored item keeps DynamoDB's digits; only the search terms are canonical.
    assert str(document["item"]["n"]) == "0.10"


def test_a_tombstone_is_found_by_its_keys_only() -> None:
    document = indexed("REMOVE")
    assert document["deleted"] is True
    assert document["search"] == {"keys": ["pk=k1"]}


def test_the_index_body_is_a_fixed_strict_mapping() -> None:
    mappings = INDEX_BODY["mappings"]
    assert mappings["dynamic"] == "strict" and mappings["date_detection"] is False
    for stored in ("item", "keys"):
        assert mappings["properties"][stored] == {"type": "object", "enabled": False}
    # A keyword term holds at most 32,766 UTF-8 bytes: 4 per character at most.
    assert IGNORE_ABOVE * 4 <= 32766


def test_infra_ships_the_same_index_body() -> None:
    assert json.loads(INDEX_FILE.read_text()) == INDEX_BODY


def test_the_sinks_own_mapping_is_compatible_and_extra_fields_are_fine() -> None:
    assert mapping_problems(INDEX_MAPPINGS) == []
    extended = json.loads(json.dumps(INDEX_MAPPINGS))
    extended["dynamic"] = "true"
    extended["properties"]["extra"] = {"type": "keyword"}
    assert mapping_problems(extended) == []


@pytest.mark.parametrize(
    ("change_mapping", "problem"),
    [
        (lambda m: m["properties"].pop("search"), "search is not mapped"),
        (
            lambda m: m["properties"].update(item={"type": "object"}),
            "item is an indexed object (dynamic fields), needs enabled: false",
        ),
        (
            lambda m: m["properties"]["search"]["properties"].update(values={"type": "text"}),
            "search.values is text, needs keyword",
        ),
        (
            lambda m: m["properties"]["change"]["properties"].update(version={"type": "float"}),
            "change.version is float, needs long",
        ),
    ],
)
def test_an_incompatible_mapping_names_each_field(change_mapping: Any, problem: str) -> None:
    mapping = json.loads(json.dumps(INDEX_MAPPINGS))
    change_mapping(mapping)
    assert mapping_problems(mapping) == [problem]


def test_a_dynamic_index_of_the_earlier_sink_is_refused() -> None:
    earlier = {
        "properties": {
            "deleted": {"type": "boolean"},
            "keys": {"properties": {"pk": {"type": "text"}}},
            "item": {"properties": {"value": {"type": "long"}}},
        }
    }
    problems = mapping_problems(earlier)
    assert "item is an indexed object (dynamic fields), needs enabled: false" in problems
    assert "search is not mapped" in problems


@settings(max_examples=500)
@given(number=dynamodb_numbers(boto3_range=False))
def test_number_terms_are_the_canonical_form(number: Decimal) -> None:
    assert number_text(number) == canonical_number(number)
