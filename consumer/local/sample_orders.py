"""LOCAL ONLY: a source table of sample orders and a workload of changes to it (demo, tests)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

ORDER_KEY = "pk"
TTL_ATTRIBUTE = "expires_at"
STATUSES = ("NEW", "PAID", "PACKED", "SHIPPED", "DELIVERED")


STREAM_SPECIFICATION = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
# Orders written before the stream existed get ids from here (apart from the workload's).
PREEXISTING_FIRST_ID = 500_000


def create_table_without_stream(dynamodb: Any, table_name: str, **stream: Any) -> Any:
    """The orders table as it was before anyone turned its stream on."""
    return dynamodb.create_table(
        TableName=table_name,
        KeySchema=[{"AttributeName": ORDER_KEY, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": ORDER_KEY, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        **stream,
    )


def create_source_table(dynamodb: Any, table_name: str) -> str:
    """Creates the orders table with a NEW_AND_OLD_IMAGES stream; returns the stream ARN."""
    spec = STREAM_SPECIFICATION
    response = create_table_without_stream(dynamodb, table_name, StreamSpecification=spec)
    return str(response["TableDescription"]["LatestStreamArn"])


def enable_stream(dynamodb: Any, table_name: str) -> str:
    """Turns the table's stream on (after items were written); returns its ARN."""
    response = dynamodb.update_table(
        TableName=table_name, StreamSpecification=STREAM_SPECIFICATION
    )
    return str(response["TableDescription"]["LatestStreamArn"])


def write_preexisting_orders(dynamodb: Any, table_name: str, count: int, seed: int = 3) -> None:
    """Orders that exist before the stream does: only a backfill can bring them to the sinks."""
    rng = random.Random(seed)
    far = int(time.time()) + 86_400 * 30
    for offset in range(count):
        item = _order_item(PREEXISTING_FIRST_ID + offset, rng, far)
        dynamodb.put_item(TableName=table_name, Item=item)


def create_kinesis_stream(kinesis: Any, stream_name: str, shards: int) -> str:
    """Creates a provisioned stream and waits until it is ACTIVE; returns its ARN."""
    kinesis.create_stream(StreamName=stream_name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=stream_name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 150}
    )
    summary = kinesis.describe_stream_summary(StreamName=stream_name)
    return str(summary["StreamDescriptionSummary"]["StreamARN"])


def _order_item(order_id: int, rng: random.Random, expires_at: int) -> dict[str, Any]:
    lines = [
        {
            "M": {
                "sku": {"S": f"SKU-{rng.randint(1, 500):04d}"},
                "qty": {"N": str(rng.randint(1, 5))},
                "price": {"N": str(Decimal(rng.randint(100, 99_999)) / 100)},
            }
        }
        for _ in range(rng.randint(1, 4))
    ]
    return {
        ORDER_KEY: {"S": f"order#{order_id:06d}"},
        "customer": {"S": rng.choice(["Ada", "Grace", "Edsger", "Barbara", "Zoë", "Dmitri"])},
        "status": {"S": STATUSES[0]},
        "total": {"N": str(Decimal(rng.randint(100, 999_999)) / 100)},
        "lines": {"L": lines},
        "tags": {"SS": sorted({rng.choice(["gift", "express", "fragile", "bulk"]) for _ in "ab"})},
        "note": {"S": rng.choice(["", "leave at door", "ring twice ☎", "日本語のメモ"])},
        "signature": {"B": rng.randbytes(16)},
        TTL_ATTRIBUTE: {"N": str(expires_at)},
        "version": {"N": "1"},
    }


@dataclass
class WorkloadCounts:
    inserts: int = 0
    modifies: int = 0
    removes: int = 0
    ttl_deletes: int = 0

    @property
    def total(self) -> int:
        return self.inserts + self.modifies + self.removes + self.ttl_deletes


def write_order_changes(
    dynamodb: Any, table_name: str, changes: int, seed: int = 7
) -> WorkloadCounts:
    """Writes about `changes` changes: inserts, status updates, deletes, and TTL-style deletes.

    A TTL-style delete removes an item whose `expires_at` lies in the past, as DynamoDB's TTL
    sweeper would; the local bridge labels it with the DynamoDB service principal.
    """
    rng = random.Random(seed)
    counts = WorkloadCounts()
    live: list[int] = []
    expired: list[int] = []
    next_id = 1
    now = int(time.time())
    while counts.total < changes:
        roll = rng.random()
        if not live or roll < 0.4:
            expiring = rng.random() < 0.1
            expires_at = now - 60 if expiring else now + 86_400 * 30
            dynamodb.put_item(TableName=table_name, Item=_order_item(next_id, rng, expires_at))
            (expired if expiring else live).append(next_id)
            next_id += 1
            counts.inserts += 1
        elif roll < 0.85:
            order_id = rng.choice(live)
            dynamodb.update_item(
                TableName=table_name,
                Key={ORDER_KEY: {"S": f"order#{order_id:06d}"}},
                UpdateExpression="SET #s = :s, version = version + :one",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":s": {"S": rng.choice(STATUSES[1:])},
                    ":one": {"N": "1"},
                },
            )
            counts.modifies += 1
        else:
            ttl = roll >= 0.93 and bool(expired)
            pool = expired if ttl else live
            order_id = pool.pop(rng.randrange(len(pool)))
            dynamodb.delete_item(
                TableName=table_name, Key={ORDER_KEY: {"S": f"order#{order_id:06d}"}}
            )
            if ttl:
                counts.ttl_deletes += 1
            else:
                counts.removes += 1
    return counts
