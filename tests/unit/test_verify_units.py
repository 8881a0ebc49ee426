"""Units of `consumer verify`: comparison by value, keys and sampling, the re-check after the
consumer's lag (with a fake clock and fake sides), the report, the metric, and the one-line
answers to bad input."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError

from consumer.pipeline.search.document import document_id
from consumer.records import Image, RecordPosition
from consumer.settings import Settings
from consumer.verify.compare import expected_replica, same_document, same_replica
from consumer.verify.keys import KeyRef, in_sample, key_from_json, key_ref
from consumer.verify.metric import METRIC, emf_lines
from consumer.verify.model import Kind, PipelineTally, VerifyError, VerifyReport
from consumer.verify.recheck import Candidate, settle, state_of
from consumer.verify.report import as_json, as_table
from consumer.verify.run import chosen_pipelines, denied_line

ITEM = {
    "pk": {"S": "order#1"},
    "total": {"N": "12345678901234567890123456789012345678"},
    "ratio": {"N": "1.50"},
    "tags": {"SS": ["a", "b", "c"]},
    "scores": {"NS": ["1", "2.0"]},
    "blob": {"B": b"\x00\xff"},
    "nested": {"M": {"list": {"L": [{"N": "1"}, {"S": "x"}, {"NULL": True}, {"BOOL": False}]}}},
}


def test_replica_copies_compare_by_value_not_by_bytes() -> None:
    stored = {
        **ITEM,
        "ratio": {"N": "1.5"},  # the same number
        "tags": {"SS": ["c", "a", "b"]},  # sets have no order
        "scores": {"NS": ["2", "1"]},
        "blob": {"B": base64.b64encode(b"\x00\xff").decode()},  # base64 text or bytes
        "_cdc_version": {"N": "7"},  # the sink's bookkeeping is not the item
        "_cdc_seq": {"S": "0"},
    }
    assert same_replica(ITEM, stored)
    off_by_one = {**stored, "total": {"N": "12345678901234567890123456789012345679"}}
    assert not same_replica(ITEM, off_by_one)  # 38 digits, exactly
    assert not same_replica(ITEM, {**stored, "tags": {"L": [{"S": "a"}, {"S": "b"}]}})
    assert not same_replica(ITEM, {**stored, "extra": {"S": "x"}})
    list_order = {**stored, "nested": {"M": {"list": {"L": [{"S": "x"}, {"N": "1"}]}}}}
    assert not same_replica(ITEM, list_order)  # lists keep their order


def test_the_replica_projection_keeps_keys_and_what_include_exclude_allow() -> None:
    expected = expected_replica(ITEM, ("pk",), frozenset({"total", "pk"}), frozenset({"total"}))
    assert expected == {"pk": ITEM["pk"]}
    assert expected_replica(ITEM, ("pk",), None, frozenset({"blob"})).keys() == set(ITEM) - {"blob"}


def test_search_documents_compare_by_the_source_types() -> None:
    document = {
        "pk": "order#1",
        "total": Decimal("12345678901234567890123456789012345678"),
        "ratio": Decimal("1.5"),
        "tags": ["c", "b", "a"],
        "scores": [2, Decimal("1")],
        "blob": base64.b64encode(b"\x00\xff").decode(),
        "nested": {"list": [1, "x", None, False]},
    }
    assert same_document(ITEM, document)
    assert not same_document(ITEM, {**document, "ratio": "1.5"})  # a string is not a number
    assert not same_document(ITEM, {**document, "total": 1.2345678901234568e37})  # via float
    assert not same_document(ITEM, {**document, "nested": {"list": [1, "x", None, 0]}})
    assert not same_document(ITEM, {k: v for k, v in document.items() if k != "blob"})


def test_keys_are_the_search_document_ids_and_read_back_from_documents() -> None:
    item = {"pk": {"S": "a~b c"}, "sk": {"N": "10.0"}}
    ref = key_ref(item, ("pk", "sk"))
    image = Image(item, RecordPosition("s", "", "0"), "Keys")
    assert ref.doc_id == document_id(image)
    assert ref.text == "pk=a~b c, sk=10"
    back = key_from_json({"pk": "a~b c", "sk": Decimal("10")}, {"pk": "S", "sk": "N"})
    assert back is not None and key_ref(back, ("pk", "sk")).doc_id == ref.doc_id
    binary = key_from_json({"id": base64.b64encode(b"\x01").decode()}, {"id": "B"})
    assert binary == {"id": {"B": b"\x01"}}
    assert key_from_json({"other": "x"}, {"pk": "S"}) is None  # another table's document
    control = key_ref({"pk": {"S": "x\x1b[2Jy"}}, ("pk",))
    assert control.text == "pk=x\\x1b[2Jy"  # escaped for the terminal


def test_the_sample_is_chosen_by_key_and_about_the_fraction() -> None:
    ids = [f"order%23{i:06d}" for i in range(4000)]
    chosen = [doc_id for doc_id in ids if in_sample(doc_id, 0.25)]
    assert 850 < len(chosen) < 1150
    assert chosen == [doc_id for doc_id in ids if in_sample(doc_id, 0.25)]  # every run
    assert all(in_sample(doc_id, 1.0) for doc_id in ids)


class FakeSide:
    """A sink whose copies change over (fake) time."""

    pipeline = "replication"

    def __init__(self, copies: list[dict[str, Any]]) -> None:
        self.copies = copies  # one dict of copies per fetch
        self.fetches = 0

    async def check(self) -> None: ...

    async def fetch(self, refs: Sequence[KeyRef]) -> dict[str, Any]:
        copies = self.copies[min(self.fetches, len(self.copies) - 1)]
        self.fetches += 1
        return {ref.doc_id: copies[ref.doc_id] for ref in refs if ref.doc_id in copies}

    def same(self, source: dict[str, Any], copy: Any) -> bool:
        return bool(source == copy)

    def live_keys(self) -> AsyncIterator[list[KeyRef]]:
        raise NotImplementedError

    async def aclose(self) -> None: ...


def _ref(name: str) -> KeyRef:
    return key_ref({"pk": {"S": name}}, ("pk",))


def test_a_difference_counts_only_if_it_outlives_the_lag() -> None:
    lagging, lost, changing = _ref("lagging"), _ref("lost"), _ref("changing")
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    versions = iter(range(1000))

    async def read_source(refs: Sequence[KeyRef]) -> dict[str, Any]:
        items = {
            lagging.doc_id: {"v": {"N": "2"}},
            lost.doc_id: {"v": {"N": "2"}},
            changing.doc_id: {"v": {"N": str(next(versions))}},  # a new state every read
        }
        return {ref.doc_id: items[ref.doc_id] for ref in refs}

    side = FakeSide([{lagging.doc_id: {"v": {"N": "2"}}, lost.doc_id: {"v": {"N": "1"}}}])
    seen = {"v": {"N": "2"}}
    candidates = [
        Candidate("replication", lagging, Kind.STALE, state_of(seen), 100.0),
        Candidate("replication", lost, Kind.STALE, state_of(seen), 100.0),
        Candidate("replication", changing, Kind.MISSING, state_of({"v": {"N": "x"}}), 100.0),
    ]
    settled = asyncio.run(
        settle(candidates, {"replication": side}, read_source, 7.5, 3, lambda: now[0], sleep)
    )
    assert [c.ref for c in settled.confirmed] == [lost]  # lagging caught up: not counted
    assert [c.ref for c in settled.unsettled] == [changing]  # kept changing every round
    assert slept[0] == 7.5  # the first look waited the whole lag after the difference was seen
    assert len(slept) == 3


def _report() -> VerifyReport:
    tally = PipelineTally("replication")
    for _ in range(5):
        tally.add(Kind.EQUAL, "ignored")
    tally.add(Kind.MISSING, "pk=order#1")
    tally.add(Kind.EXTRA, "pk=order#9")
    return VerifyReport("orders", "verify-x", {"replication": tally}, items_read=6)


def test_the_report_names_keys_only_and_counts_each_kind() -> None:
    report = _report()
    document = json.loads(as_json(report))
    assert document["ok"] is False
    replication = document["pipelines"]["replication"]
    assert (replication["equal"], replication["missing"], replication["extra"]) == (5, 1, 1)
    assert replication["first"] == {"missing": ["pk=order#1"], "stale": [], "extra": ["pk=order#9"]}
    lines = as_table(report)
    assert lines[1].split() == ["replication", "5", "1", "0", "1", "0"]
    assert "replication missing: pk=order#1" in lines
    assert lines[-1].startswith("verify: DIFFERENCES table=orders items=6 differences=2")
    report.after_repair = {"replication": 0}
    assert report.remaining == 0 and json.loads(as_json(report))["ok"] is True


def test_the_metric_is_the_differences_left_per_pipeline() -> None:
    report = _report()
    (line,) = emf_lines("Ns", "app", 5, report)
    document = orjson.loads(line)
    assert document[METRIC] == 2 and document["Pipeline"] == "replication"
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert directive["Dimensions"] == [["Application"], ["Application", "Pipeline"]]
    report.after_repair = {"replication": 0}
    assert orjson.loads(emf_lines("Ns", "app", 5, report)[0])[METRIC] == 0


def test_pipelines_asked_for_must_be_known_and_enabled() -> None:
    settings = Settings(
        stream={"name": "cdc"},
        pipelines={
            "replication": {"enabled": True, "table": "replica", "retry": {"on_failure": "stop"}}
        },
    )
    assert chosen_pipelines(settings, ()) == ("replication",)
    with pytest.raises(VerifyError, match=r"^unknown pipeline 'audit' \(choose from"):
        chosen_pipelines(settings, ("audit",))
    with pytest.raises(VerifyError, match=r"^pipeline search is not enabled"):
        chosen_pipelines(settings, ("search",))
    with pytest.raises(VerifyError, match=r"^no pipeline to verify"):
        chosen_pipelines(Settings(stream={"name": "cdc"}), ())


def test_a_refused_aws_call_is_one_line_naming_the_call_and_the_policy() -> None:
    error = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "BatchGetItem"
    )
    assert denied_line(error) == (
        "missing permission for BatchGetItem (AccessDeniedException): grant the task role the "
        "TaskVerifyPolicy (and the pipelines' policies) of infra/cloudformation/service.yaml"
    )
