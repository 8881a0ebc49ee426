"""Issue 15.2: which errors say a destination is gone (per sink), and what the shard pipeline
does then: waits up to the bound (never parks), then stops with DestinationGone, having
checkpointed nothing it did not apply. Readiness and the metric say so.

The error codes are the services' own: DynamoDB PutItem/BatchWriteItem
ResourceNotFoundException, S3 PutObject NoSuchBucket, SQS QueueDoesNotExist
(AWS.SimpleQueueService.NonExistentQueue in the query protocol), OpenSearch bulk item 404
index_not_found_exception."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace

import orjson
import pytest
from botocore.exceptions import ClientError

from consumer.pipeline.dlq import DlqRejectedError, ParkedRecord
from consumer.pipeline.missing_destination import (
    DestinationGone,
    MissingDestinations,
    missing_code,
)
from consumer.pipeline.processor import RetryPolicy, Route, ShardPipeline
from consumer.pipeline.search.faults import DestinationRefused
from consumer.pipeline.sink import SinkError
from consumer.records import ChangeEvent
from consumer.records.batch import RawRecord, ReadBatch
from consumer.service.runtime import readiness
from consumer.service.shard_task import ShardActivity
from consumer.telemetry.metrics import Snapshot, emf_line, prometheus_text
from tests.change_factory import destination_record
from tests.pipeline_fakes import MemoryCheckpointer, MemoryDlq, MemorySink

SHARD = "shardId-000000000000"
FAST = RetryPolicy(backoff_base_s=0.001, backoff_cap_s=0.002)


def client_error(code: str, operation: str = "PutItem", status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "..."}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


def wrapped(cause: BaseException, retryable: bool) -> SinkError:
    try:
        raise SinkError("sink failed", retryable=retryable) from cause
    except SinkError as error:
        return error


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (wrapped(client_error("ResourceNotFoundException"), True), "ResourceNotFoundException"),
        (wrapped(client_error("NoSuchBucket", "PutObject", 404), False), "NoSuchBucket"),
        (
            DestinationRefused("no such index", kind="index_not_found_exception", status=404),
            "index_not_found_exception",
        ),
        (client_error("QueueDoesNotExist", "SendMessageBatch"), "QueueDoesNotExist"),
        (
            client_error("AWS.SimpleQueueService.NonExistentQueue", "GetQueueAttributes"),
            "AWS.SimpleQueueService.NonExistentQueue",
        ),
    ],
)
def test_each_sinks_missing_destination_is_recognised_through_its_wrappers(
    error: BaseException, code: str
) -> None:
    assert missing_code(error) == code
    with pytest.raises(DlqRejectedError) as outer:
        raise DlqRejectedError("DLQ send failed") from error
    assert missing_code(outer.value) == code


@pytest.mark.parametrize(
    "error",
    [
        wrapped(client_error("ProvisionedThroughputExceededException"), True),
        wrapped(client_error("ValidationException"), False),
        client_error("AccessDenied", "PutObject", 403),
        DestinationRefused("blocked", kind="cluster_block_exception", status=403),
        SinkError("transform failed", retryable=False),
        RuntimeError("a bug"),
        # A transform hook reading another table: the record's problem (parked), not ours.
        wrapped(client_error("ResourceNotFoundException", "GetItem"), False),
    ],
)
def test_outages_refusals_and_bad_records_are_not_a_missing_destination(
    error: BaseException,
) -> None:
    assert missing_code(error) is None


def test_the_bound_runs_from_the_first_sighting_and_a_success_resets_it() -> None:
    now = [100.0]
    tracker = MissingDestinations(5.0, clock=lambda: now[0])
    tracker.seen_missing("replication", "ResourceNotFoundException", SHARD)
    now[0] += 4.9
    tracker.seen_missing("replication", "ResourceNotFoundException", SHARD)
    assert tracker.missing == {"replication": "ResourceNotFoundException"}
    tracker.seen_present("replication")  # the table is back
    now[0] += 4.9
    tracker.seen_missing("replication", "ResourceNotFoundException", SHARD)  # a new episode
    now[0] += 5.0
    with pytest.raises(DestinationGone) as gone:
        tracker.seen_missing("replication", "ResourceNotFoundException", SHARD)
    assert gone.value.sink == "replication" and gone.value.missing_for_s == pytest.approx(5.0)


def one_batch(count: int = 3) -> ReadBatch:
    records = [
        RawRecord(
            orjson.dumps(destination_record("INSERT", f"k{n}", 1_000 + n, new={"n": {"N": "1"}})),
            str(n + 1),
            0,
            "pk",
        )
        for n in range(count)
    ]
    return ReadBatch(SHARD, records, 0, str(count))


def bounded_pipeline(
    sink: MemorySink, dlq: MemoryDlq | None = None, bound_s: float | None = 0.2
) -> tuple[ShardPipeline, MemoryDlq, MemoryCheckpointer]:
    dlq = dlq or MemoryDlq()
    checkpointer = MemoryCheckpointer()
    pipeline = ShardPipeline(
        "stream",
        SHARD,
        [Route(sink, policy=FAST)],
        dlq,
        checkpointer,
        checkpoint_interval_s=0,
        outage_backoff_base_s=0.001,
        missing_destination_bound_s=bound_s,
    )
    return pipeline, dlq, checkpointer


def index_missing(events: Sequence[ChangeEvent], call: int) -> dict[int, SinkError]:
    return {
        i: DestinationRefused("no such index", kind="index_not_found_exception", status=404)
        for i in range(len(events))
    }


async def test_a_missing_index_stops_the_shard_at_the_bound_parking_and_checkpointing_nothing(
) -> None:
    sink = MemorySink(name="search", fail=index_missing)
    pipeline, dlq, checkpointer = bounded_pipeline(sink)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DestinationGone) as gone:
        await pipeline.process(one_batch())
    elapsed = loop.time() - started
    assert gone.value.sink == "search" and gone.value.code == "index_not_found_exception"
    assert 0.2 <= elapsed < 1.0  # at the bound, not a backoff cap later
    assert dlq.parked == [] and checkpointer.checkpoints == [] and sink.state == {}
    assert pipeline.stats.sink_waits["search"] >= 1


async def test_a_missing_bucket_at_flush_is_waited_on_not_parked_then_stops_the_shard() -> None:
    # The audit sink's PutObject error for a deleted bucket is not retryable (a record would
    # be parked for it if it came from `write`): at the bound the shard stops, nothing parked.
    sink = MemorySink(name="audit", buffered=True, flush_due=True)
    sink.flush_errors = [
        wrapped(client_error("NoSuchBucket", "PutObject", 404), False) for _ in range(10_000)
    ]
    pipeline, dlq, checkpointer = bounded_pipeline(sink)
    with pytest.raises(DestinationGone) as gone:
        await pipeline.process(one_batch())
    assert gone.value.sink == "audit" and gone.value.code == "NoSuchBucket"
    assert dlq.parked == [] and checkpointer.checkpoints == [] and sink.state == {}


async def test_a_destination_back_within_the_bound_loses_nothing_and_stops_nothing() -> None:
    calls = 3  # missing for the first three writes only
    sink = MemorySink(
        name="replication",
        fail=lambda events, call: (
            {
                i: wrapped(client_error("ResourceNotFoundException"), True)
                for i in range(len(events))
            }
            if call <= calls
            else None
        ),
    )
    pipeline, dlq, checkpointer = bounded_pipeline(sink, bound_s=5.0)
    await pipeline.process(one_batch())
    await pipeline.drain()
    assert len(sink.state) == 3 and dlq.parked == []
    assert checkpointer.checkpoints[-1] == ("3", 0)
    assert pipeline.missing_destinations is not None
    assert pipeline.missing_destinations.missing == {}


async def test_without_a_bound_a_missing_destination_is_waited_on_as_before() -> None:
    """Replay and the Lambda handler build pipelines without a bound: no DestinationGone."""
    sink = MemorySink(name="search", fail=index_missing)
    pipeline, dlq, _ = bounded_pipeline(sink, bound_s=None)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pipeline.process(one_batch()), 0.5)
    assert dlq.parked == [] and pipeline.missing_destinations is None


class DeletedQueue:
    """A DLQ whose queue was deleted: every park fails as SqsDeadLetterQueue reports it."""

    def __init__(self) -> None:
        self.calls = 0

    async def park(self, records: Sequence[ParkedRecord]) -> None:
        self.calls += 1
        try:
            raise client_error("QueueDoesNotExist", "SendMessageBatch")
        except ClientError as error:
            raise DlqRejectedError(f"DLQ send failed: {error}") from error


async def test_a_deleted_dlq_is_waited_on_up_to_the_bound_not_stopped_after_three_tries() -> None:
    sink = MemorySink(fail=lambda events, call: {0: SinkError("poison", retryable=False)})
    queue = DeletedQueue()
    pipeline = ShardPipeline(
        "stream",
        SHARD,
        [Route(sink, policy=FAST)],
        queue,
        MemoryCheckpointer(),
        checkpoint_interval_s=0,
        outage_backoff_base_s=0.001,
        missing_destination_bound_s=0.2,
    )
    with pytest.raises(DestinationGone) as gone:
        await pipeline.process(one_batch(1))
    assert gone.value.sink == "dlq" and queue.calls > 3
    assert pipeline.stats.park_refusals == 0


class CoolingCoordinator:
    def __init__(self, paused_s: float) -> None:
        self.paused_s = paused_s

    def held_shards(self) -> frozenset[str]:
        return frozenset()

    def is_valid(self) -> bool:
        return True

    def taking_paused_s(self) -> float:
        return self.paused_s


def test_readiness_is_false_while_a_destination_is_missing_and_while_cooling_down() -> None:
    missing: dict[str, str] = {}
    coordinator = CoolingCoordinator(0.0)
    state = SimpleNamespace(
        stopping=False,
        ready=True,
        coordinator=coordinator,
        activity=ShardActivity(),
        missing_destinations=lambda: dict(missing),
    )
    worker = SimpleNamespace(state=state)
    assert readiness(worker).ready  # type: ignore[arg-type]
    missing["replication"] = "ResourceNotFoundException"
    verdict = readiness(worker)  # type: ignore[arg-type]
    assert not verdict.ready and "replication" in verdict.reason
    assert "ResourceNotFoundException" in verdict.reason
    missing.clear()
    coordinator.paused_s = 250.0  # gave the lease up; takes none for the cool-down
    verdict = readiness(worker)  # type: ignore[arg-type]
    assert not verdict.ready and "cooling down" in verdict.reason
    coordinator.paused_s = 0.0
    assert readiness(worker).ready  # type: ignore[arg-type]


def test_leases_given_up_are_counted_in_emf_and_prometheus() -> None:
    before, after = Snapshot(destinations_gone_total=1), Snapshot(destinations_gone_total=3)
    document = orjson.loads(emf_line("Ns", "app", 0, after, before, 60))
    assert document["DestinationsGone"] == 2
    names = [m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert "DestinationsGone" in names
    assert 'consumer_destinations_gone_total{application="app"} 3' in prometheus_text(
        "app", after
    )


def test_the_destination_missing_alarm_pages_on_the_first_lease_given_up() -> None:
    from tests.unit.test_infra_template import load_template

    alarm = load_template()["Resources"]["DestinationMissingAlarm"]["Properties"]
    assert alarm["MetricName"] == "DestinationsGone"
    assert (alarm["Statistic"], alarm["Threshold"]) == ("Sum", 1)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
