"""`consumer verify` against OpenSearch (the strict protocol double, now with `_mget` and
`search_after` on `_id`): the index corrupted in every way, found by `_mget` and by the
`search_after` pass over live documents, repaired through the OpenSearch sink (external
versions), and the bad input an index can give: missing, and refusing the task's requests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from consumer.local.stack import LocalStackState
from tests.opensearch_double import OpenSearchDouble
from tests.opensearch_double.engine import Document
from tests.verify.world import ITEMS, doc_id, key, search_env, synced_deployment, verify

pytestmark = pytest.mark.integration


@pytest.fixture
def double() -> Iterator[OpenSearchDouble]:
    with OpenSearchDouble() as fresh:
        yield fresh


def _put(double: OpenSearchDouble, document: dict[str, object], order_id: int) -> None:
    """A document written behind the sink's back, with an old version (1)."""
    index = double.engine.index("changes")
    source = orjson.dumps(document)
    index.docs[doc_id(order_id)] = Document(doc_id(order_id), source, document, 1, 0)


def corrupt(double: OpenSearchDouble) -> None:
    index = double.engine.index("changes")
    del index.docs[doc_id(1)]  # missing
    stale = json.loads(index.docs[doc_id(2)].source)
    stale["item"]["status"] = "OLD"
    _put(double, stale, 2)  # stale
    _put(double, {"keys": {"pk": key(3)}, "deleted": True, "change": {}}, 3)  # tombstone
    for order_id in (30, 999):  # a live document where it was deleted; one never there
        item = {"pk": key(order_id), "status": "NEW"}
        _put(double, {"keys": {"pk": key(order_id)}, "item": item, "deleted": False}, order_id)
    index.refresh()  # as OpenSearch's refresh_interval (1 s) would


def test_verify_finds_and_repairs_every_kind_in_opensearch(
    local_stack: LocalStackState,
    unique_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    double: OpenSearchDouble,
) -> None:
    opensearch = {
        "CONSUMER_PIPELINES__SEARCH__ENDPOINT": double.url,
        "CONSUMER_PIPELINES__SEARCH__AUTH": "none",
    }
    deployment = synced_deployment(local_stack, unique_name, tmp_path, **opensearch)
    env = search_env(tmp_path, **opensearch)
    double.engine.index("changes").refresh()
    corrupt(double)

    code, report, err = verify(deployment, monkeypatch, env, "--pipelines", "search")
    assert code == 1, (report, err)
    found = report["pipelines"]["search"]
    assert found["first"] == {
        "missing": [f"pk={key(1)}", f"pk={key(3)}"],
        "stale": [f"pk={key(2)}"],
        "extra": [f"pk={key(30)}", f"pk={key(999)}"],
    }, found
    assert found["equal"] == ITEMS - 2 - 3
    paths = {request.path.rsplit("/", 1)[-1] for request in double.requests}
    assert {"_mget", "_search"} <= paths

    code, report, err = verify(deployment, monkeypatch, env, "--pipelines", "search", "--repair")
    assert code == 0, (report, err)
    assert report["pipelines"]["search"]["repaired"] == 5
    double.engine.index("changes").refresh()
    code, report, err = verify(deployment, monkeypatch, env, "--pipelines", "search")
    assert code == 0, (report, err)
    assert report["pipelines"]["search"]["equal"] == ITEMS - 2
    # The extras are tombstones now, with the repair's version (its read time, microseconds).
    extra = double.engine.index("changes").docs[doc_id(999)]
    assert json.loads(extra.source)["deleted"] is True and extra.version > 10**15

    # Bad input: an index that does not exist, and one that refuses the task's requests.
    code, _, err = verify(
        deployment, monkeypatch, {**env, "CONSUMER_PIPELINES__SEARCH__INDEX": "absent"}
    )
    assert code == 2
    assert err.strip() == (
        f"consumer: verify: search index 'absent' does not exist at {double.url} "
        "(pipelines.search.index): has the search pipeline run yet?"
    )
    double.deny_requests(403)
    code, _, err = verify(deployment, monkeypatch, env, "--pipelines", "search")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "OpenSearch refused HEAD on index 'changes' (403" in lines[0], err
