"""A deployment whose replica and search index the service has brought up to the table, and
the ways to corrupt them that `consumer verify` must find (tests/integration/test_verify*.py)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from consumer.cli import main
from consumer.local.stack import LocalStackState
from consumer.pipeline.replication import DELETED, EXPIRES_AT, SEQUENCE, VERSION
from tests.service_harness import Deployment
from tests.snapshot.world import order_item

ITEMS = 40
DELETED_ORDERS = (30, 31)  # deleted through the stream: tombstones in both sinks
OLD_VERSION = "1"  # microseconds since 1970: older than anything the service writes


def key(order_id: int) -> str:
    return f"order#{order_id:06d}"


def doc_id(order_id: int) -> str:
    return f"order%23{order_id:06d}"


def synced_deployment(
    local_stack: LocalStackState, name: str, search_dir: Path, **extra: str
) -> Deployment:
    """Source table with ITEMS orders (two of them deleted again), the service run until idle:
    replica and local index equal the table, with tombstones for the deleted ones."""
    deployment = Deployment(local_stack, name, shards=1)
    deployment.create()
    dynamodb = deployment.endpoints.client("dynamodb")
    rng = random.Random(7)
    for order_id in range(ITEMS):
        dynamodb.put_item(TableName=deployment.table, Item=order_item(order_id, rng))
    for order_id in DELETED_ORDERS:
        dynamodb.delete_item(TableName=deployment.table, Key={"pk": {"S": key(order_id)}})
    deployment.bridge()
    env = search_env(search_dir, **extra)
    assert deployment.run_in_process(until_idle_s=2.0, **env) == 0
    return deployment


def search_env(search_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "CONSUMER_PIPELINES__SEARCH__ENABLED": "true",
        "CONSUMER_PIPELINES__SEARCH__LOCAL_PATH": str(search_dir),
        "CONSUMER_TELEMETRY__EMF": "false",
        **extra,
    }


def verify(
    deployment: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    *args: str,
) -> tuple[int, dict[str, Any], str]:
    """`consumer verify --json ...` in this process: exit code, the report, stderr."""
    for name in [name for name in os.environ if name.startswith("CONSUMER_")]:
        monkeypatch.delenv(name)  # what an earlier call set
    for name, value in deployment.environment(**env).items():
        monkeypatch.setenv(name, value)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(
            [
                "verify",
                "--table",
                deployment.table,
                "--json",
                "--progress",
                "none",
                "--recheck-after-s",
                "0.2",
                "--segments",
                "1",
                *args,
            ]
        )
    text = out.getvalue().strip()
    report = json.loads(text.splitlines()[-1]) if text else {}
    return code, report, err.getvalue()


def corrupt_replica(deployment: Deployment) -> None:
    """Every kind of difference, once each (the order numbers name them)."""
    client = deployment.endpoints.client("dynamodb")
    replica = deployment.replica
    version = {VERSION: {"N": OLD_VERSION}, SEQUENCE: {"S": "0" * 64}}
    # missing: the item is gone from the replica
    client.delete_item(TableName=replica, Key={"pk": {"S": key(1)}})
    # stale: an older state of the item
    stale = client.get_item(TableName=replica, Key={"pk": {"S": key(2)}})["Item"]
    client.put_item(TableName=replica, Item={**stale, "status": {"S": "OLD"}, **version})
    # a tombstone where the item lives (missing)
    client.put_item(
        TableName=replica,
        Item={
            "pk": {"S": key(3)},
            **version,
            DELETED: {"BOOL": True},
            EXPIRES_AT: {"N": "9999999999"},
        },
    )
    # a live item where it was deleted (extra)
    client.put_item(
        TableName=replica, Item={"pk": {"S": key(30)}, "status": {"S": "NEW"}, **version}
    )
    # an item the table never had (extra)
    client.put_item(
        TableName=replica, Item={"pk": {"S": key(999)}, "status": {"S": "NEW"}, **version}
    )


def corrupt_index(search_dir: Path) -> None:
    """The same five differences in the local index (its SQLite file, written directly)."""
    path = search_dir / "changes.sqlite3"
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id(1),))
        (source,) = connection.execute(
            "SELECT source FROM documents WHERE doc_id = ?", (doc_id(2),)
        ).fetchone()
        document = json.loads(source)
        document["item"]["status"] = "OLD"
        connection.execute(
            "UPDATE documents SET source = ?, version = 1 WHERE doc_id = ?",
            (json.dumps(document), doc_id(2)),
        )
        tombstone = {"keys": {"pk": key(3)}, "deleted": True, "change": {}}
        connection.execute(
            "UPDATE documents SET source = ?, deleted = 1, version = 1 WHERE doc_id = ?",
            (json.dumps(tombstone), doc_id(3)),
        )
        revived = {
            "keys": {"pk": key(30)},
            "item": {"pk": key(30), "status": "NEW"},
            "deleted": False,
            "change": {},
        }
        connection.execute(
            "UPDATE documents SET source = ?, deleted = 0, version = 1 WHERE doc_id = ?",
            (json.dumps(revived), doc_id(30)),
        )
        extra = {**revived, "keys": {"pk": key(999)}, "item": {"pk": key(999)}}
        connection.execute(
            "INSERT INTO documents (doc_id, version, sequence, deleted, source) "
            "VALUES (?, 1, '', 0, ?)",
            (doc_id(999), json.dumps(extra)),
        )
    finally:
        connection.close()
