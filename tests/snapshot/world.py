"""A table that already holds items before its stream exists, and changes that keep coming
while a backfill runs (tests of `consumer backfill`)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumer.local.sample_orders import (
    ORDER_KEY,
    create_kinesis_stream,
    create_table_without_stream,
    enable_stream,
)
from tests.service_harness import Deployment

ROOT = Path(__file__).resolve().parents[2]


def order_item(order_id: int, rng: random.Random, version: int = 1) -> dict[str, Any]:
    """An item of about 1 KB with every kind of attribute the sinks must carry."""
    return {
        ORDER_KEY: {"S": f"order#{order_id:06d}"},
        "customer": {"S": rng.choice(["Ada", "Grace", "Zoë", "日本"])},
        "status": {"S": "NEW"},
        "total": {"N": str(rng.randint(1, 99_999))},
        "tags": {"SS": ["gift", "express"]},
        "signature": {"B": rng.randbytes(16)},
        "lines": {"L": [{"M": {"sku": {"S": "SKU-1"}, "qty": {"N": "2"}}}]},
        "padding": {"S": "x" * 850},
        "version": {"N": str(version)},
    }


def prefill(dynamodb: Any, table: str, count: int, seed: int = 3) -> None:
    rng = random.Random(seed)
    for order_id in range(count):
        dynamodb.put_item(TableName=table, Item=order_item(order_id, rng))


@dataclass
class ChangeWriter:
    """Keeps changing the table from a thread: updates and deletes of items the backfill may
    or may not have read yet, and inserts of new keys and of deleted ones."""

    dynamodb: Any
    table: str
    existing: int
    seed: int = 11
    pause_s: float = 0.01
    counts: dict[str, int] = field(default_factory=lambda: {"put": 0, "update": 0, "delete": 0})

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._rng = random.Random(self.seed)
        self._next_id = self.existing + 100_000

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        rng = self._rng
        while not self._stop.is_set():
            roll = rng.random()
            order_id = rng.randrange(self.existing)
            key = {ORDER_KEY: {"S": f"order#{order_id:06d}"}}
            if roll < 0.45:
                self.dynamodb.update_item(
                    TableName=self.table,
                    Key=key,
                    UpdateExpression="SET #s = :s, version = if_not_exists(version, :z) + :one",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={
                        ":s": {"S": rng.choice(["PAID", "SHIPPED"])},
                        ":one": {"N": "1"},
                        ":z": {"N": "0"},
                    },
                )
                self.counts["update"] += 1
            elif roll < 0.7:
                self.dynamodb.delete_item(TableName=self.table, Key=key)
                self.counts["delete"] += 1
            else:
                new_id = order_id if roll < 0.8 else self._next_id
                self._next_id += 1
                self.dynamodb.put_item(TableName=self.table, Item=order_item(new_id, rng, 7))
                self.counts["put"] += 1
            time.sleep(self.pause_s)


def create_world(deployment: Deployment, existing: int) -> None:
    """The source table with `existing` items written before its stream was enabled, the
    Kinesis stream, the replica and the DLQ."""
    endpoints = deployment.endpoints
    dynamodb = endpoints.client("dynamodb")
    create_table_without_stream(dynamodb, deployment.table)
    prefill(dynamodb, deployment.table, existing)
    enable_stream(dynamodb, deployment.table)
    create_kinesis_stream(endpoints.client("kinesis"), deployment.stream, deployment.shards)
    endpoints.client("sqs").create_queue(QueueName=f"{deployment.name}-dlq")
    deployment.create_replica()


def backfill_args(table: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "consumer", "backfill", "--table", table, *extra]


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def snapshot_parts(dynamodb: Any, lease_table: str) -> list[dict[str, Any]]:
    """The lease table's snapshot part items (`__snapshot__#<id>#<part>`)."""
    items = dynamodb.scan(TableName=lease_table, ConsistentRead=True)["Items"]
    return [
        item
        for item in items
        if item["leaseKey"]["S"].startswith("__snapshot__#") and "partName" in item
    ]
