"""Issue 16, the log canary through the commands that read history and whole items: stream
replay (two worker processes), archive replay (the audit bucket), backfill (a Scan of the
table) and verify --repair. DESIGN.md invariant 6: nothing logs item contents.

A live worker first applies canary items (keys, strings, a set, a map, a number), one the
replication hook refuses quoting the whole item (tests/canary_hooks.py) and records that
cannot be decoded (tests/integration/test_log_canary.py), with audit, search and replication.
Then each command runs as its own process at DEBUG with the canary AWS secret, and every line
it (and its worker processes) wrote to stdout or stderr is searched for every canary. Only a
report line, not a log line, may name a key (verify lists the keys that differ, as the DLQ
listing shows the records): values never appear anywhere.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from consumer.local.stack import LocalStackState
from consumer.pipeline.replication import DELETED, SEQUENCE, VERSION
from tests.change_factory import destination_record
from tests.integration.test_log_canary import (
    AWS_SECRET,
    KEY,
    NUMBER,
    TEXT,
    leaks,
    put_poison_records,
    run_consumer,
)
from tests.service_harness import Deployment, by_key

pytestmark = pytest.mark.integration

GOOD = [f"{KEY}-{n}" for n in range(6)]
VALUES = (TEXT, NUMBER, AWS_SECRET)  # never in any line, a report's included
REFUSED = f"{KEY}-refuse"  # the hook raises ValueError quoting the item: parked every time
TRANSFORM = "CONSUMER_PIPELINES__REPLICATION__TRANSFORM"


@dataclass
class CanaryHistory:
    app: Deployment
    env: dict[str, str]  # the commands' settings: DEBUG, the canary secret, all three sinks

    def run(self, *argv: str, transform: bool = True) -> tuple[int, str]:
        env = self.app.environment(**self.env)
        if not transform:
            del env[TRANSFORM]
        return run_consumer(list(argv), env, 120)


def canary_item(key: str, note: str) -> dict[str, Any]:
    return {
        "pk": {"S": key},
        "note": {"S": f"{note} {TEXT}"},
        "qty": {"N": NUMBER},
        "tags": {"SS": [TEXT, "plain"]},
        "memo": {"M": {"text": {"S": TEXT}, "n": {"N": NUMBER}}},
    }


@pytest.fixture(scope="module")
def history(
    local_stack: LocalStackState, tmp_path_factory: pytest.TempPathFactory
) -> CanaryHistory:
    app = Deployment(local_stack, f"lc-{uuid.uuid4().hex[:10]}", shards=2)
    app.create()
    bucket = f"{app.name}-audit"
    app.endpoints.client("s3").create_bucket(Bucket=bucket)
    dynamodb = app.endpoints.client("dynamodb")
    for key in [*GOOD, REFUSED, f"{KEY}-deleted"]:
        dynamodb.put_item(TableName=app.table, Item=canary_item(key, "first"))
    for key in GOOD[:3]:
        dynamodb.put_item(TableName=app.table, Item=canary_item(key, "second"))
    dynamodb.delete_item(TableName=app.table, Key={"pk": {"S": f"{KEY}-deleted"}})
    app.bridge()
    put_poison_records(app)
    put_image_poison(app)
    env = {
        "CONSUMER_TELEMETRY__LOG_LEVEL": "debug",
        "CONSUMER_AWS__SECRET_ACCESS_KEY": AWS_SECRET,
        "CONSUMER_STREAM__MODE": "polling",
        TRANSFORM: "tests.canary_hooks:fail_on_canaries",
        "CONSUMER_PIPELINES__REPLICATION__RETRY__MAX_ATTEMPTS": "1",
        "CONSUMER_PIPELINES__SEARCH__ENABLED": "true",
        "CONSUMER_PIPELINES__SEARCH__LOCAL_PATH": str(tmp_path_factory.mktemp("search")),
        "CONSUMER_PIPELINES__AUDIT__ENABLED": "true",
        "CONSUMER_PIPELINES__AUDIT__BUCKET": bucket,
        "CONSUMER_PIPELINES__AUDIT__SSE": "none",
        "CONSUMER_PIPELINES__AUDIT__MAX_AGE_S": "1",
    }
    made = CanaryHistory(app, env)
    code, output = made.run("run", "--until-idle", "2")
    assert code == 0, output[-3000:]
    assert '"level": "debug"' in output  # DEBUG was on
    assert leaks(output) == [], "\n".join(leaks(output))
    assert set(live_replica(app)) == set(GOOD)
    return made


def put_image_poison(app: Deployment) -> None:
    """Records of this table (so the audit archive keeps them) whose images break DynamoDB's
    rules around canary values: search and replication park them, from the stream and from
    the archive. tests/unit/test_decode_rules.py cites the documentation of each rule."""
    now_us = int(time.time() * 1_000_000)
    images = [
        {"note": {"Q": TEXT}},  # no such type
        {"tags": {"SS": [TEXT, TEXT]}},  # set members repeat
        {"qty": {"N": f"{NUMBER}E+200"}},  # beyond 1E+126
    ]
    kinesis = app.endpoints.client("kinesis")
    for n, image in enumerate(images):
        record = destination_record(
            "INSERT", f"{KEY}-poison-{n}", now_us + n, image, table=app.table
        )
        kinesis.put_record(StreamName=app.stream, Data=orjson.dumps(record), PartitionKey=KEY)


def live_replica(app: Deployment) -> dict[str, dict[str, Any]]:
    return by_key([item for item in app.replica_items() if not item.get(DELETED)])


def parked_count(app: Deployment) -> int:
    attributes = app.endpoints.client("sqs").get_queue_attributes(
        QueueUrl=app.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def wipe_replica(app: Deployment) -> None:
    dynamodb = app.endpoints.client("dynamodb")
    for item in app.replica_items():
        dynamodb.delete_item(TableName=app.replica, Key={"pk": item["pk"]})
    assert app.replica_items() == []


def test_stream_replay_with_two_workers_logs_no_canary(history: CanaryHistory) -> None:
    wipe_replica(history.app)
    parked_before = parked_count(history.app)
    code, output = history.run(
        "replay", "--from", "TRIM_HORIZON", "--pipelines", "replication,search", "--workers", "2"
    )
    assert code == 0, output[-3000:]
    assert leaks(output) == [], "\n".join(leaks(output))
    assert '"level": "debug"' in output  # DEBUG was on (the replay's lease coordinators)
    # The refused item and the poison are parked, by whichever worker holds their shard (the
    # summary's parked line counts this process only, so the queue is what is checked).
    assert parked_count(history.app) > parked_before
    assert set(live_replica(history.app)) == set(GOOD)


def test_archive_replay_logs_no_canary(history: CanaryHistory) -> None:
    wipe_replica(history.app)
    code, output = history.run(
        "replay", "--source", "archive", "--table", history.app.table, "--from", "TRIM_HORIZON"
    )
    assert code == 0, output[-3000:]
    assert leaks(output) == [], "\n".join(leaks(output))
    assert "records parked in the dead-letter queue" in output  # the image poison, again
    assert set(live_replica(history.app)) == set(GOOD)


def test_backfill_logs_no_canary(history: CanaryHistory) -> None:
    app = history.app
    wipe_replica(app)
    code, output = history.run(
        "backfill", "--table", app.table, "--source", "scan", "--segments", "2"
    )
    assert "backfill: OK" in output, output[-3000:]
    assert code == 0
    assert leaks(output) == [], "\n".join(leaks(output))
    assert set(live_replica(app)) == set(GOOD)


def test_verify_repair_logs_no_canary(history: CanaryHistory) -> None:
    """A replica item missing, one stale, one the table never had; the refused item leaves
    the table (the index still holds it: an extra). --repair fixes them all. Without the
    transform: with one, verify compares only the replica's keys, not the stale values."""
    app = history.app
    dynamodb = app.endpoints.client("dynamodb")
    dynamodb.delete_item(TableName=app.table, Key={"pk": {"S": REFUSED}})
    old = {VERSION: {"N": "1"}, SEQUENCE: {"S": "0" * 64}}
    dynamodb.delete_item(TableName=app.replica, Key={"pk": {"S": GOOD[0]}})
    dynamodb.put_item(TableName=app.replica, Item={**canary_item(GOOD[1], "stale"), **old})
    dynamodb.put_item(TableName=app.replica, Item={**canary_item(f"{KEY}-extra", "x"), **old})

    read = ("verify", "--table", app.table, "--segments", "1", "--recheck-after-s", "0.2")
    code, output = history.run(*read, "--repair", transform=False)
    assert code == 0, output[-3000:]
    logged = "\n".join(line for line in output.splitlines() if '"level"' in line)
    assert leaks(logged) == [], leaks(logged)
    values = [line for line in output.splitlines() if any(v in line for v in VALUES)]
    assert values == [], values
    assert f"{KEY}-extra" not in live_replica(app)
    assert live_replica(app)[GOOD[1]]["note"] == {"S": f"second {TEXT}"}, output

    code, output = history.run(*read, transform=False)
    assert code == 0, output[-3000:]  # nothing left to repair
    assert leaks(output) == [], "\n".join(leaks(output))
