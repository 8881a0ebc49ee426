"""The OpenSearch sink's `_bulk` protocol: NDJSON bodies and per-item outcomes."""

from __future__ import annotations

import orjson
import pytest

from consumer.pipeline.search.bulk import (
    VERSION_TYPE,
    bulk_body,
    bulk_chunks,
    encode_write,
    item_error,
    item_outcomes,
)
from consumer.pipeline.search.document import plan_writes
from consumer.pipeline.search.faults import DestinationRefused
from consumer.pipeline.sink import SinkError
from tests.change_factory import change, insert, remove


def test_each_write_is_an_externally_versioned_index_action_with_exact_numbers() -> None:
    big = "-1.2345678901234567890123456789012345678E-100"
    (write,) = plan_writes([change("INSERT", "k", 42_000, new={"n": {"N": big}})]).writes
    action, source, end = encode_write(write).split(b"\n")
    assert end == b""
    assert orjson.loads(action) == {
        "index": {"_id": "k", "version": 42_000, "version_type": VERSION_TYPE}
    }
    assert f'"n":{big}'.encode() in source


def test_a_remove_indexes_a_tombstone_rather_than_deleting() -> None:
    (write,) = plan_writes([remove("k", 7_000)]).writes
    action, source, _ = encode_write(write).split(b"\n")
    assert "index" in orjson.loads(action)
    assert orjson.loads(source)["deleted"] is True


def test_chunks_respect_the_byte_limit_and_keep_order() -> None:
    writes = plan_writes([insert(f"k{i:02d}", 1_000, 10 + i) for i in range(20)]).writes
    size = len(encode_write(writes[0]))
    chunks = list(bulk_chunks(writes, max_bytes=size * 3 + 1))
    assert [len(chunk) for chunk in chunks] == [3, 3, 3, 3, 3, 3, 2]
    assert [w.doc_id for chunk in chunks for w, _ in chunk] == [w.doc_id for w in writes]
    assert all(len(bulk_body(chunk)) <= size * 3 + 1 for chunk in chunks)
    # A write larger than the limit goes alone.
    assert [len(chunk) for chunk in bulk_chunks(writes[:2], max_bytes=10)] == [1, 1]


def item(status: int, kind: str | None = None) -> dict[str, object]:
    result: dict[str, object] = {"_index": "i", "_id": "k", "status": status}
    if kind is not None:
        result["error"] = {"type": kind, "reason": "because"}
    return {"index": result}


@pytest.mark.parametrize("status", [200, 201])
def test_applied_items_are_successes(status: int) -> None:
    assert item_error(item(status), "k") is None


def test_a_version_conflict_means_newer_state_is_there_a_success() -> None:
    assert item_error(item(409, "version_conflict_engine_exception"), "k") is None


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (429, "es_rejected_execution_exception", True),
        (500, "illegal_state_exception", True),
        (503, "unavailable_shards_exception", True),
        (400, "mapper_parsing_exception", False),
        (400, "illegal_argument_exception", False),
        (409, "some_other_conflict", False),
        (400, "strict_dynamic_mapping_exception", False),
        # Destination faults (faults.py): the index is missing, write-blocked or access is
        # denied; every record would fail the same way, so they wait instead of parking.
        (404, "index_not_found_exception", True),
        (403, "cluster_block_exception", True),
        (429, "cluster_block_exception", True),
        (403, "security_exception", True),
        (401, "security_exception", True),
    ],
)
def test_failed_items_say_whether_to_retry(status: int, kind: str, retryable: bool) -> None:
    error = item_error(item(status, kind), "k")
    assert error is not None
    assert error.retryable is retryable
    assert kind in str(error) and "document k" in str(error)
    assert isinstance(error, DestinationRefused) is (status in (401, 403, 404) or "block" in kind)


def test_long_reasons_are_clipped() -> None:
    raw = {
        "index": {
            "status": 400,
            "error": {"type": "mapper_parsing_exception", "reason": "x" * 5000},
        }
    }
    error = item_error(raw, "k")
    assert error is not None and len(str(error)) < 400


def test_a_response_with_the_wrong_number_of_items_fails_the_chunk() -> None:
    chunk = next(bulk_chunks(plan_writes([insert("a", 1, 1), insert("b", 1, 1)]).writes, 10**6))
    with pytest.raises(SinkError) as raised:
        item_outcomes({"errors": False, "items": [item(201)]}, chunk)
    assert raised.value.retryable
    outcomes, _ = item_outcomes({"errors": True, "items": [item(201), item(400, "x")]}, chunk)
    assert outcomes[0] is None and outcomes[1] is not None
