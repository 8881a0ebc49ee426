"""The OpenSearch double maps documents as OpenSearch does, and refuses writes as a blocked
index or the security plugin does. Raw HTTP, so every status and error body is visible.

Rules, and where they come from (OpenSearch 2.x):
- dynamic field types: docs "Dynamic mapping" (opensearch.org/docs/latest/field-types/#dynamic
  -mapping) and DocumentParser.createBuilderFromDynamicValue: integers (INT, LONG, BIG_INTEGER)
  -> long, floating point -> float, strings -> text + keyword (ignore_above 256), or date when
  `date_detection` (default true) parses them and they are not numbers;
- range and finiteness: NumberFieldMapper (Jackson's InputCoercionException "out of range of
  long"; "[float] supports only finite values");
- limits: docs "Index settings" (index.mapping.total_fields.limit 1000,
  index.mapping.depth.limit 20) and MappingLookup.checkFieldLimit / checkObjectDepthLimit
  (depth = the object path's dots + 2), both IllegalArgumentException -> 400;
- `dynamic: strict` -> strict_dynamic_mapping_exception; `enabled: false` objects are not
  parsed (docs "Object field type", parameter `enabled`);
- a write-blocked index: ClusterBlockException, RestStatus.FORBIDDEN, per bulk item
  (IndexMetadata.INDEX_WRITE_BLOCK, "FORBIDDEN/8/index write (api)").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_search_double import call, ndjson
from tests.opensearch_double import OpenSearchDouble


@pytest.fixture
def double() -> Iterator[OpenSearchDouble]:
    with OpenSearchDouble() as started:
        yield started


def index_one(
    double: OpenSearchDouble, doc_id: str, source: dict[str, Any] | str
) -> dict[str, Any]:
    """One bulk index item's result for `source` (a dict, or raw JSON text)."""
    text = source if isinstance(source, str) else json.dumps(source)
    body = ndjson({"index": {"_id": doc_id}}) + text.encode() + b"\n"
    status, response = call(double, "POST", "/idx/_bulk", body, "application/x-ndjson")
    assert status == 200, response
    result: dict[str, Any] = response["items"][0]["index"]
    return result


def field_type(double: OpenSearchDouble, path: str) -> Any:
    status, body = call(double, "GET", "/idx/_mapping")
    assert status == 200
    node: Any = body["idx"]["mappings"]
    for part in path.split("."):
        node = node["properties"][part]
    return node.get("type", "object")


# --- dynamic mapping ----------------------------------------------------------------------


def test_the_first_type_seen_fixes_a_field_and_a_conflicting_value_is_a_400(
    double: OpenSearchDouble,
) -> None:
    assert index_one(double, "a", {"price": 12})["status"] == 201
    assert field_type(double, "price") == "long"
    refused = index_one(double, "b", {"price": "twelve"})
    assert refused["status"] == 400
    assert refused["error"]["type"] == "mapper_parsing_exception"
    assert "failed to parse field [price] of type [long]" in refused["error"]["reason"]
    # Numbers in strings are coerced into a numeric field, fractions truncated.
    assert index_one(double, "c", {"price": "13"})["status"] == 201
    assert index_one(double, "d", {"price": 13.5})["status"] == 201


def test_an_integer_beyond_long_is_out_of_range(double: OpenSearchDouble) -> None:
    digits = "12345678901234567890123456789012345678"  # 38 digits, a valid DynamoDB number
    refused = index_one(double, "a", f'{{"n": {digits}}}')
    assert refused["status"] == 400
    assert refused["error"]["type"] == "mapper_parsing_exception"
    assert refused["error"]["caused_by"]["type"] == "input_coercion_exception"
    assert "out of range of long" in refused["error"]["caused_by"]["reason"]
    assert index_one(double, "b", f'{{"n": {2**63 - 1}}}')["status"] == 201


def test_decimals_map_to_float_which_holds_no_1e125(double: OpenSearchDouble) -> None:
    assert index_one(double, "a", '{"f": 0.10}')["status"] == 201
    assert field_type(double, "f") == "float"
    refused = index_one(double, "b", '{"g": 1E+125}')  # DynamoDB allows up to 9.9...E+125
    assert refused["status"] == 400
    assert "supports only finite values" in refused["error"]["caused_by"]["reason"]


def test_date_like_strings_become_dates_and_a_later_non_date_is_a_400(
    double: OpenSearchDouble,
) -> None:
    assert index_one(double, "a", {"when": "2024-07-03", "year": "2024"})["status"] == 201
    assert field_type(double, "when") == "date"
    assert field_type(double, "year") == "text"  # pure numbers are never date-detected
    refused = index_one(double, "b", {"when": "next tuesday"})
    assert refused["status"] == 400 and refused["error"]["type"] == "mapper_parsing_exception"
    assert "of type [date]" in refused["error"]["reason"]


def test_an_object_and_a_value_cannot_share_a_field(double: OpenSearchDouble) -> None:
    assert index_one(double, "a", {"m": {"x": 1}})["status"] == 201
    refused = index_one(double, "b", {"m": 5})
    assert refused["status"] == 400 and refused["error"]["type"] == "mapper_parsing_exception"
    assert index_one(double, "c", {"s": "text"})["status"] == 201
    assert index_one(double, "d", {"s": {"x": 1}})["status"] == 400


def test_nulls_and_empty_arrays_map_nothing_and_array_elements_share_a_type(
    double: OpenSearchDouble,
) -> None:
    assert index_one(double, "a", {"z": None, "e": []})["status"] == 201
    _, body = call(double, "GET", "/idx/_mapping")
    assert body["idx"]["mappings"]["properties"] == {}
    assert index_one(double, "b", {"mixed": [1, "x"]})["status"] == 400
    assert index_one(double, "c", {"fine": ["x", 1, True]})["status"] == 201


def test_more_than_1000_fields_is_a_400_and_the_mapping_is_unchanged(
    double: OpenSearchDouble,
) -> None:
    assert index_one(double, "a", {f"a{i}": i for i in range(600)})["status"] == 201
    refused = index_one(double, "b", {f"b{i}": i for i in range(401)})
    assert refused["status"] == 400
    assert refused["error"]["type"] == "illegal_argument_exception"
    assert refused["error"]["reason"] == "Limit of total fields [1000] has been exceeded"
    _, body = call(double, "GET", "/idx/_mapping")
    assert len(body["idx"]["mappings"]["properties"]) == 600
    # Each string adds two fields: text and its keyword sub-field.
    assert index_one(double, "c", {f"c{i}": "s" for i in range(200)})["status"] == 201
    assert index_one(double, "d", {"d": "s"})["status"] == 400


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"o": value}
    return value


def test_objects_deeper_than_20_levels_are_a_400(double: OpenSearchDouble) -> None:
    assert index_one(double, "a", nested(19))["status"] == 201  # deepest object: 18 dots + 2
    refused = index_one(double, "b", nested(20))
    assert refused["status"] == 400
    assert refused["error"]["type"] == "illegal_argument_exception"
    assert "Limit of mapping depth [20] has been exceeded" in refused["error"]["reason"]


def test_index_settings_set_the_limits(double: OpenSearchDouble) -> None:
    settings = {"index": {"mapping": {"total_fields": {"limit": 3}}}}
    assert call(double, "PUT", "/idx", {"settings": settings})[0] == 200
    assert index_one(double, "a", {"x": 1, "y": 2, "z": 3})["status"] == 201
    assert index_one(double, "b", {"w": 1})["status"] == 400


# --- explicit mappings --------------------------------------------------------------------


def test_strict_mappings_refuse_unknown_fields_and_false_ones_ignore_them(
    double: OpenSearchDouble,
) -> None:
    mappings = {
        "dynamic": "strict",
        "properties": {"known": {"type": "keyword"}, "loose": {"dynamic": False}},
    }
    assert call(double, "PUT", "/idx", {"mappings": mappings})[0] == 200
    refused = index_one(double, "a", {"known": "k", "other": 1})
    assert refused["status"] == 400
    assert refused["error"]["type"] == "strict_dynamic_mapping_exception"
    assert index_one(double, "b", {"loose": {"anything": [1, "x", {"y": 2}]}})["status"] == 201
    _, body = call(double, "GET", "/idx/_mapping")
    assert "properties" not in body["idx"]["mappings"]["properties"]["loose"]


def test_disabled_objects_take_any_shape(double: OpenSearchDouble) -> None:
    mappings = {"properties": {"item": {"type": "object", "enabled": False}}}
    assert call(double, "PUT", "/idx", {"mappings": mappings})[0] == 200
    wide = {f"a{i}": i for i in range(2000)}
    big = "9" * 38
    inner = json.dumps({"deep": nested(32), "wide": wide})[:-1] + f',"n":{big},"d":"2024-01-01"}}'
    text = f'{{"item": {inner}}}'
    assert index_one(double, "a", text)["status"] == 201
    assert index_one(double, "b", {"item": "a value where an object was"})["status"] == 201
    _, body = call(double, "GET", "/idx/_mapping")
    assert body["idx"]["mappings"]["properties"]["item"] == {"type": "object", "enabled": False}


def test_keywords_skip_values_over_ignore_above_and_refuse_immense_terms(
    double: OpenSearchDouble,
) -> None:
    mappings = {
        "properties": {
            "capped": {"type": "keyword", "ignore_above": 8191},
            "uncapped": {"type": "keyword"},
        }
    }
    assert call(double, "PUT", "/idx", {"mappings": mappings})[0] == 200
    huge = "x" * 40_000
    assert index_one(double, "a", {"capped": huge})["status"] == 201
    refused = index_one(double, "b", {"uncapped": huge})
    assert refused["status"] == 400
    assert "immense term" in refused["error"]["reason"]


def test_unknown_field_types_are_refused_at_creation(double: OpenSearchDouble) -> None:
    status, body = call(
        double, "PUT", "/idx", {"mappings": {"properties": {"x": {"type": "nope"}}}}
    )
    assert status == 400 and body["error"]["type"] == "mapper_parsing_exception"


# --- destination faults -------------------------------------------------------------------


def test_a_write_blocked_index_refuses_each_item_with_403_until_it_lifts(
    double: OpenSearchDouble,
) -> None:
    double.block_writes("idx", times=2)
    body = ndjson({"index": {"_id": "a"}}, {}, {"delete": {"_id": "b"}})
    status, response = call(double, "POST", "/idx/_bulk", body, "application/x-ndjson")
    assert status == 200 and response["errors"] is True
    for item in response["items"]:
        (result,) = item.values()
        assert result["status"] == 403
        assert result["error"]["type"] == "cluster_block_exception"
        assert "FORBIDDEN/8/index write" in result["error"]["reason"]
    assert index_one(double, "a", {})["status"] == 201  # the block lifted by itself


@pytest.mark.parametrize("status", [401, 403])
def test_the_security_plugin_refuses_whole_requests(double: OpenSearchDouble, status: int) -> None:
    double.deny_requests(status, times=1)
    refused, body = call(
        double, "POST", "/idx/_bulk", ndjson({"index": {"_id": "a"}}, {}), "application/x-ndjson"
    )
    assert refused == status and body["error"]["type"] == "security_exception"
    assert call(double, "HEAD", "/")[0] == 200
