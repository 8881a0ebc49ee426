"""Verify throughput: items per second one worker compares, table against replica.

Run by `make bench`. A moto table of BENCH_VERIFY_ITEMS (default 1,000) items of about 1 KB and
a replica holding the same items (as the replication sink leaves them, with its bookkeeping
attributes); `consumer verify --pipelines replication --workers 1 --segments 4`: the shared
table reader's leased Scan, BatchGetItem of the replica per page, the comparison, and the
replica's extras pass (a second leased Scan plus BatchGetItem of the table). Every item is equal,
so nothing is re-checked; the figure is the verify path plus moto, not DynamoDB's service time.
Prints `verify_items_per_s`.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from checkpoints.table import lease_table_definition
from consumer.local.resources import create_replica
from consumer.local.sample_orders import create_table_without_stream
from consumer.local.stack import LocalStack, LocalStackState
from consumer.pipeline.replication import SEQUENCE, VERSION
from consumer.settings import Settings
from consumer.verify.model import Kind
from consumer.verify.run import Verify, VerifyRequest
from tests.snapshot.world import order_item

ITEMS = int(os.environ.get("BENCH_VERIFY_ITEMS", "1000"))


def settings(state: LocalStackState, name: str) -> Settings:
    return Settings(
        application=name,
        stream={"name": f"{name}-cdc"},
        aws={
            "region": "us-east-1",
            "endpoint_kinesis": state.kinesis_url,
            "endpoint_dynamodb": state.moto_url,
            "access_key_id": "000000000000",
            "secret_access_key": "local",
        },
        pipelines={
            "replication": {
                "enabled": True,
                "table": f"{name}-replica",
                "retry": {"on_failure": "stop"},
            }
        },
        telemetry={"log_level": "warning", "emf": False},
    )


def fill(state: LocalStackState, table: str, replica: str) -> None:
    dynamodb = state.endpoints().client("dynamodb")
    create_table_without_stream(dynamodb, table)
    create_replica(state.endpoints(), replica)
    rng = random.Random(1)
    version = {VERSION: {"N": "1"}, SEQUENCE: {"S": "0" * 64}}
    for start in range(0, ITEMS, 25):
        items = [order_item(i, rng) for i in range(start, min(ITEMS, start + 25))]
        dynamodb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": i}} for i in items]}
        )
        dynamodb.batch_write_item(
            RequestItems={replica: [{"PutRequest": {"Item": {**i, **version}}} for i in items]}
        )


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-verify-") as work,
        LocalStack(Path(work)) as state,
    ):
        name = "bench-verify"
        table = f"{name}-orders"
        fill(state, table, f"{name}-replica")
        client = state.endpoints().client
        client("dynamodb").create_table(**lease_table_definition(f"{name}-leases"))
        request = VerifyRequest(
            table=table,
            pipelines=("replication",),
            segments=4,
            workers=1,
            recheck_after_s=0.0,
            measure_lag=False,
        )
        started = time.perf_counter()
        report = asyncio.run(Verify(settings(state, name), request).run())
        elapsed = time.perf_counter() - started
    tally = report.pipelines["replication"]
    assert tally.counts[Kind.EQUAL] == ITEMS and tally.differences == 0, tally
    print(f"verify_items_per_s {ITEMS / elapsed:.0f} items/s")


if __name__ == "__main__":
    main()
