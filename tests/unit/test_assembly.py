"""One assembly (issue 16): the runtime owns the sinks it builds, and one-try delivery (the
Lambda handler, `dlq replay`) reports what a sink did not apply instead of retrying it.

Lambda's contract for ReportBatchItemFailures: the function returns the failed records and
Lambda retries from the lowest of them ("Implementing partial batch responses", AWS Lambda
Developer Guide); a handler that retried a throttled sink itself would run into the
function's timeout and fail the whole batch.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from botocore.exceptions import ClientError

from consumer.pipeline.audit.sink import AuditSink
from consumer.pipeline.processor import Route
from consumer.pipeline.search.local_index import LocalSearchIndex
from consumer.records import DecodeError, RecordPosition
from consumer.service.assembly import open_runtime
from consumer.service.deliver_once import deliver_once
from consumer.settings import Settings
from tests.change_factory import upsert
from tests.pipeline_fakes import MemorySink, sink_error


def settings(tmp_path: Path) -> Settings:
    return Settings(
        application="orders",
        aws={"endpoint_s3": "http://127.0.0.1:9", "endpoint_sqs": "http://127.0.0.1:9"},
        stream={"name": "orders-cdc"},
        pipelines={
            "audit": {"enabled": True, "bucket": "audit"},
            "search": {"enabled": True, "local_path": str(tmp_path)},
        },
        dlq={"queue_url": "http://127.0.0.1:9/000000000000/dlq"},
    )


async def test_every_sink_built_is_closed_when_the_runtime_ends(tmp_path: Path) -> None:
    async with open_runtime(settings(tmp_path)) as runtime:
        first = {r.sink.name: r.sink for r in runtime.routes("shardId-000000000000")}
        second = {r.sink.name: r.sink for r in runtime.routes("shardId-000000000001")}
        search = first["search"]
        assert search is second["search"]  # one search sink for every shard
        assert isinstance(search, LocalSearchIndex)
        assert await search.count() == 0  # opens the index and its thread
        audits = [first["audit"], second["audit"]]
        assert all(isinstance(a, AuditSink) and not a._closed for a in audits)
    assert search._executor is None
    assert all(isinstance(a, AuditSink) and a._closed for a in audits)


def throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "Put")


async def test_a_throttled_sink_is_reported_at_once_not_retried(tmp_path: Path) -> None:
    sink = MemorySink(fail=lambda events, call: throttled())
    events = [upsert("a", 1_000, 1, sequence=5), upsert("b", 1_001, 2, sequence=6)]
    async with open_runtime(settings(tmp_path)) as runtime:
        failures = await asyncio.wait_for(
            deliver_once(runtime, "lambda", [Route(sink)], events), timeout=5
        )
    assert sink.calls == 1
    assert sorted(f.sequence_number for f in failures) == ["5", "6"]
    assert all(isinstance(f.cause, ClientError) for f in failures)


async def test_only_the_records_a_sink_refused_fail_and_the_rest_are_applied(
    tmp_path: Path,
) -> None:
    sink = MemorySink(
        fail=lambda events, call: {1: sink_error(retryable=True)} if call == 1 else None
    )
    events = [upsert(k, 1_000, 1, sequence=n) for n, k in enumerate("abc", start=10)]
    async with open_runtime(settings(tmp_path)) as runtime:
        failures = await deliver_once(runtime, "lambda", [Route(sink)], events)
    assert [f.sequence_number for f in failures] == ["11"]
    assert sink.calls == 1 and len(sink.state) == 2


async def test_a_failed_flush_fails_every_record_it_held(tmp_path: Path) -> None:
    sink = MemorySink(buffered=True)
    sink.flush_errors.append(throttled())
    events = [upsert("a", 1_000, 1, sequence=7), upsert("b", 1_000, 1, sequence=8)]
    async with open_runtime(settings(tmp_path)) as runtime:
        failures = await asyncio.wait_for(
            deliver_once(runtime, "lambda", [Route(sink)], events), timeout=5
        )
    assert sorted(f.sequence_number for f in failures) == ["7", "8"]
    assert sink.state == {}


async def test_a_record_that_cannot_be_decoded_is_reported_as_decode(tmp_path: Path) -> None:
    sink = MemorySink()
    bad = DecodeError(RecordPosition("stream", "lambda", "3"), "not a change")
    async with open_runtime(settings(tmp_path)) as runtime:
        failures = await deliver_once(
            runtime, "lambda", [Route(sink)], [bad, upsert("a", 1_000, 1, sequence=4)]
        )
    assert [(f.pipeline, f.sequence_number, f.cause) for f in failures] == [("decode", "3", None)]
    assert len(sink.state) == 1
