"""The OpenSearch double itself: it must answer as OpenSearch does, or the sink's tests prove
nothing. Raw HTTP, so every status and error body is visible."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.opensearch_double import OpenSearchDouble


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def double(clock: Clock) -> Iterator[OpenSearchDouble]:
    with OpenSearchDouble(clock=clock) as started:
        yield started


def call(
    double: OpenSearchDouble,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    parts = urlsplit(double.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"content-type": content_type} if data is not None else {}
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    return response.status, json.loads(raw) if raw else None


def ndjson(*lines: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def index_action(doc_id: str, version: int, version_type: str = "external") -> dict[str, Any]:
    return {"index": {"_id": doc_id, "version": version, "version_type": version_type}}


def bulk(double: OpenSearchDouble, *lines: dict[str, Any]) -> list[dict[str, Any]]:
    status, body = call(double, "POST", "/idx/_bulk", ndjson(*lines), "application/x-ndjson")
    assert status == 200, body
    items: list[dict[str, Any]] = [next(iter(item.values())) for item in body["items"]]
    assert body["errors"] == any("error" in item for item in items)
    return items


# --- versioning ---------------------------------------------------------------------------


def test_external_versions_must_grow(double: OpenSearchDouble) -> None:
    items = bulk(
        double,
        index_action("a", 5), {"v": 1},
        index_action("a", 5), {"v": 2},
        index_action("a", 4), {"v": 3},
        index_action("a", 6), {"v": 4},
    )  # fmt: skip
    assert [(i["status"], i.get("result")) for i in items] == [
        (201, "created"), (409, None), (409, None), (200, "updated"),
    ]  # fmt: skip
    conflict = items[1]["error"]
    assert conflict["type"] == "version_conflict_engine_exception"
    assert conflict["reason"] == (
        "[a]: version conflict, current version [5] is higher or equal to the one provided [5]"
    )
    status, document = call(double, "GET", "/idx/_doc/a")
    assert status == 200 and document["_version"] == 6 and document["_source"] == {"v": 4}


def test_external_gte_accepts_an_equal_version(double: OpenSearchDouble) -> None:
    items = bulk(
        double,
        index_action("a", 5, "external_gte"), {"v": 1},
        index_action("a", 5, "external_gte"), {"v": 2},
        index_action("a", 4, "external_gte"), {"v": 3},
    )  # fmt: skip
    assert [i["status"] for i in items] == [201, 200, 409]
    assert "is higher than the one provided [4]" in items[2]["error"]["reason"]


def test_versioned_deletes_are_remembered_only_for_gc_deletes(
    double: OpenSearchDouble, clock: Clock
) -> None:
    bulk(double, index_action("a", 1), {"v": 1})
    (deleted,) = bulk(double, {"delete": {"_id": "a", "version": 5, "version_type": "external"}})
    assert (deleted["status"], deleted["result"]) == (200, "deleted")
    (late,) = bulk(double, index_action("a", 3), {"v": 3})
    assert late["status"] == 409  # the delete's version is still known
    clock.now += 61  # index.gc_deletes defaults to 60 s
    (resurrected,) = bulk(double, index_action("a", 3), {"v": 3})
    assert (resurrected["status"], resurrected["result"]) == (201, "created")


def test_deleting_a_missing_document_is_not_found_without_error(double: OpenSearchDouble) -> None:
    (item,) = bulk(double, {"delete": {"_index": "idx", "_id": "nope"}})
    assert (item["status"], item["result"]) == (404, "not_found")
    assert "error" not in item
    status, body = call(double, "DELETE", "/idx/_doc/nope")
    assert status == 404 and body["result"] == "not_found"


def test_internal_versions_count_up(double: OpenSearchDouble) -> None:
    first, second = bulk(double, {"index": {"_id": "a"}}, {"v": 1}, {"index": {"_id": "a"}}, {})
    assert (first["_version"], second["_version"]) == (1, 2)
    (created,) = bulk(double, {"create": {"_id": "a"}}, {"v": 1})
    assert created["status"] == 409


# --- strictness ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind", "reason"),
    [
        (
            b'{"index":{"_id":"a"}}\n{"v":1}',
            "illegal_argument_exception",
            "terminated by a newline",
        ),
        (b'{"upsert":{"_id":"a"}}\n{}\n', "illegal_argument_exception", "expected one of"),
        (b'{"index":{"_id":"a","colour":1}}\n{}\n', "illegal_argument_exception", "[colour]"),
        (b"not json\n", "illegal_argument_exception", "Malformed action/metadata line [1]"),
        (b'{"index":{"_id":"a"}}\n', "illegal_argument_exception", "terminated by a newline"),
        (
            b'{"index":{"_id":"a","version":3}}\n{}\n',
            "action_request_validation_exception",
            "internal versioning can not be used",
        ),
        (
            b'{"index":{"_id":"a","version_type":"external"}}\n{}\n',
            "action_request_validation_exception",
            "illegal version value [-3] for version type [EXTERNAL]",
        ),
        (
            b'{"create":{"_id":"a","version":3,"version_type":"external"}}\n{}\n',
            "action_request_validation_exception",
            "create operations only support internal versioning",
        ),
        (
            b'{"index":{"_id":"' + b"x" * 513 + b'"}}\n{}\n',
            "action_request_validation_exception",
            "must be no longer than 512 bytes",
        ),
        (
            b'{"index":{"_id":"a","version":1,"version_type":"sideways"}}\n{}\n',
            "illegal_argument_exception",
            "No version type match [sideways]",
        ),
    ],
)
def test_malformed_bulk_requests_fail_as_a_whole(
    double: OpenSearchDouble, body: bytes, kind: str, reason: str
) -> None:
    status, error = call(double, "POST", "/idx/_bulk", body, "application/x-ndjson")
    assert status == 400
    assert error["status"] == 400 and error["error"]["type"] == kind
    assert reason in error["error"]["reason"]


def test_an_unparsable_source_fails_only_its_item(double: OpenSearchDouble) -> None:
    body = b'{"index":{"_id":"a"}}\n{oops\n{"index":{"_id":"b"}}\n{"v":1}\n'
    status, response = call(double, "POST", "/idx/_bulk", body, "application/x-ndjson")
    assert status == 200 and response["errors"] is True
    first, second = (next(iter(item.values())) for item in response["items"])
    assert (first["status"], first["error"]["type"]) == (400, "mapper_parsing_exception")
    assert second["status"] == 201


def test_bulk_needs_an_index(double: OpenSearchDouble) -> None:
    status, error = call(double, "POST", "/_bulk", ndjson({"index": {"_id": "a"}}, {}))
    assert status == 400 and "index is missing" in error["error"]["reason"]
    status, _ = call(double, "POST", "/_bulk", ndjson({"index": {"_index": "x", "_id": "a"}}, {}))
    assert status == 200


def test_bulk_bodies_must_be_json_or_ndjson(double: OpenSearchDouble) -> None:
    status, error = call(
        double, "POST", "/idx/_bulk", ndjson({"index": {"_id": "a"}}, {}), "text/plain"
    )
    assert status == 406 and error["error"]["type"] == "content_type_exception"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/idx/_mapping"),
        ("POST", "/idx/_doc"),
        ("PUT", "/idx/_doc/a"),
        ("GET", "/_cat/indices"),
    ],
)
def test_unknown_endpoints_are_400s(double: OpenSearchDouble, method: str, path: str) -> None:
    status, error = call(double, method, path)
    assert status == 400
    assert error == {"error": f"no handler found for uri [{path}] and method [{method}]"}


def test_unknown_parameters_are_400s(double: OpenSearchDouble) -> None:
    status, error = call(
        double, "POST", "/idx/_bulk?refresh=true&colour=red", ndjson({"index": {"_id": "a"}}, {})
    )
    assert status == 400 and "unrecognized parameter: [colour]" in error["error"]["reason"]


def test_index_creation_and_existence(double: OpenSearchDouble) -> None:
    assert call(double, "HEAD", "/idx")[0] == 404
    assert call(double, "PUT", "/idx", {"mappings": {"properties": {}}})[0] == 200
    assert call(double, "HEAD", "/idx")[0] == 200
    status, error = call(double, "PUT", "/idx", {})
    assert status == 400 and error["error"]["type"] == "resource_already_exists_exception"
    status, error = call(double, "PUT", "/Bad")
    assert status == 400 and error["error"]["type"] == "invalid_index_name_exception"
    status, error = call(double, "GET", "/missing/_doc/a")
    assert status == 404 and error["error"]["type"] == "index_not_found_exception"


# --- refresh and queries ------------------------------------------------------------------


def test_search_sees_documents_after_a_refresh_get_at_once(double: OpenSearchDouble) -> None:
    bulk(double, {"index": {"_id": "a"}}, {"name": "Red Apple", "deleted": False})
    assert call(double, "GET", "/idx/_doc/a")[0] == 200
    assert call(double, "POST", "/idx/_count", {})[1]["count"] == 0
    assert call(double, "POST", "/idx/_refresh")[0] == 200
    assert call(double, "POST", "/idx/_count", {})[1]["count"] == 1


def test_queries(double: OpenSearchDouble) -> None:
    bulk(
        double,
        {"index": {"_id": "a"}}, {"item": {"name": "red apple", "n": 5}, "deleted": False},
        {"index": {"_id": "b"}}, {"item": {"name": "green apple", "n": 6}, "deleted": False},
        {"index": {"_id": "c"}}, {"keys": {"pk": "c"}, "deleted": True},
    )  # fmt: skip
    call(double, "POST", "/idx/_refresh")

    def ids(query: dict[str, Any]) -> list[str]:
        status, body = call(double, "POST", "/idx/_search", {"query": query, "size": 10})
        assert status == 200, body
        return sorted(hit["_id"] for hit in body["hits"]["hits"])

    assert ids({"match_all": {}}) == ["a", "b", "c"]
    assert ids({"match": {"item.name": "apple"}}) == ["a", "b"]
    assert ids({"query_string": {"query": "red"}}) == ["a"]
    assert ids({"query_string": {"query": "item.name:green"}}) == ["b"]
    assert ids({"term": {"item.n": 6}}) == ["b"]
    assert ids({"term": {"deleted": True}}) == ["c"]
    assert ids({"bool": {"must_not": [{"term": {"deleted": True}}]}}) == ["a", "b"]
    status, error = call(double, "POST", "/idx/_search", {"query": {"fuzzy": {"x": "y"}}})
    assert status == 400 and error["error"]["type"] == "parsing_exception"
    status, error = call(double, "POST", "/idx/_search", {"aggs": {}})
    assert status == 400


# --- faults -------------------------------------------------------------------------------


def test_injected_request_faults_fail_whole_bulks_then_stop(double: OpenSearchDouble) -> None:
    double.fail_next_bulk(2, 503)
    body = ndjson({"index": {"_id": "a"}}, {})
    statuses = [call(double, "POST", "/idx/_bulk", body)[0] for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_injected_document_faults_fail_only_that_item(double: OpenSearchDouble) -> None:
    double.fail_document("a", 429, times=1)
    first, second = bulk(double, {"index": {"_id": "a"}}, {}, {"index": {"_id": "b"}}, {})
    assert first["status"] == 429 and first["error"]["type"] == "es_rejected_execution_exception"
    assert second["status"] == 201
    (again,) = bulk(double, {"index": {"_id": "a"}}, {})
    assert again["status"] == 201
