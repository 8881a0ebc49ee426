"""`consumer replay` on the local stack: repair a replica from a time T and rebuild it from the
trim horizon, from the stream and from the audit archive; stop exactly at --to; share the
shards between replay workers.

The history (once per module): a first batch of changes, then a time T (on a whole-second
boundary margin, because the local bridge's change times have second precision), then a
second batch; the live service (replication + audit) applies both, so the replica equals the
table and the archive holds every change.

"Corrupting" the replica models a bad deploy that wrote wrong data: the item's attributes are
changed and its `_cdc_version` set to 0. A replay's write wins only over an *older* stored
version (sinks never regress newer state), so an item a bad deploy wrote with a current
version would not be repaired by any replay; one with an old version is.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

from consumer.cli import main as cli_main
from consumer.local.bridge import DestinationBridge
from consumer.local.sample_orders import write_order_changes
from consumer.local.stack import LocalStackState
from consumer.pipeline.replication import DELETED, RESERVED
from consumer.replay import ReplayOptions, Source, run_replay
from consumer.replay.runner import Console, build_request
from consumer.replay.stream import StreamReplay, plan_stream_replay
from consumer.replay.window import iso_ms
from tests.service_harness import Deployment, by_key

pytestmark = pytest.mark.integration

AUDIT_BUCKET_SUFFIX = "-audit"


@dataclass
class History:
    app: Deployment
    env: dict[str, str]
    t_ms: int
    at_t: dict[str, dict[str, Any]]  # the source table as of T
    changed_after_t: list[str]  # keys whose state changed after T (deleted ones included)
    unchanged: list[str]  # keys not changed after T
    dynamodb: Any  # a boto3 client (building one takes a while here)


def _sleep_past_second(margin_s: float) -> None:
    now = time.time()
    time.sleep(int(now) + 1 + margin_s - now)


@pytest.fixture(scope="module")
def history(local_stack: LocalStackState) -> History:
    name = f"r-{uuid.uuid4().hex[:10]}"
    app = Deployment(local_stack, name)
    app.create()
    bucket = name + AUDIT_BUCKET_SUFFIX
    app.endpoints.client("s3").create_bucket(Bucket=bucket)
    dynamodb = app.endpoints.client("dynamodb")
    # One bridge for both batches (a new one would copy the first batch again, after T).
    bridge = DestinationBridge(
        app.endpoints.client("dynamodbstreams"),
        app.endpoints.client("kinesis"),
        app.table,
        app.stream,
        app.endpoints.region,
    )
    write_order_changes(dynamodb, app.table, 60, seed=11)
    while bridge.pump():
        pass
    at_t = by_key(app.source_items())
    # Change times have whole-second precision locally: keep T clear of both batches.
    _sleep_past_second(0.3)
    t_ms = int(time.time() * 1000)
    _sleep_past_second(0.1)
    write_order_changes(dynamodb, app.table, 40, seed=12)  # re-puts, updates and deletes
    while bridge.pump():
        pass
    env = {
        "CONSUMER_STREAM__MODE": "polling",
        "CONSUMER_PIPELINES__AUDIT__ENABLED": "true",
        "CONSUMER_PIPELINES__AUDIT__BUCKET": bucket,
        "CONSUMER_PIPELINES__AUDIT__SSE": "none",
        "CONSUMER_PIPELINES__AUDIT__MAX_AGE_S": "1",
    }
    assert app.run_in_process(2.0, 120, **env) == 0
    final = by_key(app.source_items())
    keys = sorted(set(at_t) | set(final))
    changed = [key for key in keys if at_t.get(key) != final.get(key)]
    unchanged = [key for key in keys if key not in changed and key in final]
    assert len(changed) >= 10 and unchanged, "the workload must change some items, not all"
    made = History(app, env, t_ms, at_t, changed, unchanged, dynamodb)
    _assert_replica_equals_table(made)
    return made


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI configures structlog to print to the (captured, later closed) stdout."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def _replica_client(history: History) -> Any:
    return history.dynamodb


def _corrupt(history: History, keys: list[str]) -> None:
    """A bad deploy: wrong attributes under an old version; one item lost, deleted ones back."""
    client = _replica_client(history)
    table = history.app.replica
    for index, key in enumerate(keys):
        if index == 0:
            client.delete_item(TableName=table, Key={"pk": {"S": key}})
            continue
        client.put_item(
            TableName=table,
            Item={
                "pk": {"S": key},
                "status": {"S": "CORRUPTED"},
                "_cdc_version": {"N": "0"},
                "_cdc_seq": {"S": "0"},
            },
        )


def _scan(history: History, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = history.dynamodb.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _replica(history: History) -> dict[str, dict[str, Any]]:
    """The replica's live items without the version attributes (as `live_items`)."""
    return by_key(
        [
            {name: value for name, value in item.items() if name not in RESERVED}
            for item in _scan(history, history.app.replica)
            if not item.get(DELETED, {}).get("BOOL")
        ]
    )


def _source(history: History) -> dict[str, dict[str, Any]]:
    return by_key(_scan(history, history.app.table))


def _wipe_replica(history: History) -> None:
    """Every item and tombstone gone."""
    table = history.app.replica
    keys = [{"pk": item["pk"]} for item in _scan(history, table)]
    for start in range(0, len(keys), 25):
        history.dynamodb.batch_write_item(
            RequestItems={table: [{"DeleteRequest": {"Key": k}} for k in keys[start : start + 25]]}
        )
    assert _scan(history, table) == []


def _replay(history: History, **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    settings = history.app.settings(**history.env)
    code = asyncio.run(
        asyncio.wait_for(
            run_replay(
                settings,
                ReplayOptions(pipelines=("replication",), progress="none", **options),
                asyncio.Event(),
                Console(out, err),
            ),
            timeout=90,
        )
    )
    return code, out.getvalue(), err.getvalue()


def _assert_replica_equals_table(history: History) -> None:
    assert _replica(history) == _source(history)


def test_two_stream_replay_workers_from_t_repair_every_item_changed_since_t(
    history: History,
) -> None:
    app = history.app
    control = history.unchanged[0]
    original_control = by_key(_scan(history, app.replica))[control]
    _corrupt(history, history.changed_after_t)
    _corrupt(history, ["-", control])  # changed before T: a replay from T leaves it alone
    settings = app.settings(**history.env)
    options = ReplayOptions(from_text=iso_ms(history.t_ms), pipelines=("replication",))

    async def two_workers() -> list[Any]:
        now_ms = int(time.time() * 1000)
        request, _ = build_request(settings, options, now_ms)
        plan = await plan_stream_replay(settings, request.window, now_ms)
        assert plan.horizon.warning is None
        workers = [
            StreamReplay(settings, request, plan, worker_id=f"replay-{n}", poll_s=0.3)
            for n in range(2)
        ]
        stop = asyncio.Event()
        return await asyncio.wait_for(
            asyncio.gather(*(worker.run(stop) for worker in workers)), timeout=90
        )

    outcomes = asyncio.run(two_workers())
    assert all(outcome.complete for outcome in outcomes)
    assert all(outcome.local.records > 0 for outcome in outcomes), "both workers read shards"
    replica = _replica(history)
    source = _source(history)
    assert replica[control]["status"] == {"S": "CORRUPTED"}  # before T: not replayed
    replica.pop(control)
    source.pop(control)
    assert replica == source
    _replica_client(history).put_item(
        TableName=app.replica,
        Item=original_control,
    )  # restored
    _assert_replica_equals_table(history)
    lease_tables = history.dynamodb.list_tables()["TableNames"]
    assert not [t for t in lease_tables if "-replay-" in t], "a complete replay cleans up"


@pytest.mark.usefixtures("restore_logging")
def test_stream_replay_from_before_the_trim_horizon_rebuilds_an_empty_replica(
    history: History, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _wipe_replica(history)
    for key, value in history.app.environment(**history.env).items():
        monkeypatch.setenv(key, value)
    code = cli_main(
        [
            "replay",
            "--from",
            "-2d",
            "--pipelines",
            "replication",
            "--workers",
            "2",
            "--progress",
            "log",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    assert "before the trim horizon" in captured.err
    assert "24.0 h of the requested history is missing" in captured.err
    assert "complete" in captured.out
    _assert_replica_equals_table(history)


def test_stream_replay_to_t_rebuilds_the_state_as_of_t(history: History) -> None:
    _wipe_replica(history)
    code, out, err = _replay(history, from_text="TRIM_HORIZON", to_text=iso_ms(history.t_ms))
    assert code == 0, err
    assert re.search(r"skipped [1-9][0-9,]* made after --to", out), out
    assert _replica(history) == history.at_t
    code, out, err = _replay(history, from_text=iso_ms(history.t_ms))  # and on to now
    assert code == 0, err
    _assert_replica_equals_table(history)


def test_archive_replay_from_t_repairs_every_item_changed_since_t(history: History) -> None:
    _corrupt(history, history.changed_after_t)  # (or left as of T by the test before)
    code, out, err = _replay(history, from_text=iso_ms(history.t_ms), source=Source.ARCHIVE)
    assert code == 0, err
    assert "outside the window" in out
    _assert_replica_equals_table(history)


def test_archive_replay_from_the_start_rebuilds_an_empty_replica(history: History) -> None:
    _wipe_replica(history)
    code, _, err = _replay(history, from_text="TRIM_HORIZON", source=Source.ARCHIVE)
    assert code == 0, err
    _assert_replica_equals_table(history)


def test_a_rerun_under_the_same_name_continues_only_the_same_window(history: History) -> None:
    """Issue 22.1: `--from X --to T --keep-lease-table`, then `--from X` without --to, took the
    old leases at the old cut-off and exited 0 without applying the changes made after T."""
    _wipe_replica(history)
    name = f"window-{uuid.uuid4().hex[:6]}"
    first = {"from_text": "TRIM_HORIZON", "replay_name": name, "keep_lease_table": True}
    code, out, err = _replay(history, to_text=iso_ms(history.t_ms), **first)
    assert code == 0, err
    code, out, err = _replay(history, **first)  # no --to: another window
    assert code == 2
    assert err.count("\n") == 1 and f"replay {name} exists for another window" in err
    code, out, err = _replay(history, to_text=iso_ms(history.t_ms), **first)  # the same: resumes
    assert code == 0, err
    assert f"resuming replay {name}" in out
    assert _replica(history) == history.at_t
