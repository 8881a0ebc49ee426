"""Backfill throughput: items per second applied by one worker, from a Scan and from an export.

Run by `make bench`. A moto table of BENCH_BACKFILL_ITEMS (default 5,000) items of about 1 KB;
one reader (`--workers 1`) applies them through the null pipeline, so the figure is the
backfill's own path (lease-table checkpoints, Scan pages or gzip export lines, records, the
pipeline) plus moto's Scan or S3, not a sink's service time. The export is written first by the
export double of the tests (the documented layout in moto's S3), untimed, as AWS would have
written it. Prints `backfill_items_per_s_scan` and `backfill_items_per_s_export`.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from checkpoints.table import lease_table_definition
from consumer.local.sample_orders import create_table_without_stream
from consumer.local.stack import LocalStack, LocalStackState
from consumer.settings import Settings
from consumer.snapshot.backfill import Backfill, BackfillRequest
from tests.snapshot.export_double import LocalExports
from tests.snapshot.world import order_item

ITEMS = int(os.environ.get("BENCH_BACKFILL_ITEMS", "5000"))


def settings(state: LocalStackState, name: str) -> Settings:
    return Settings(
        application=name,
        stream={"name": f"{name}-cdc"},
        aws={
            "region": "us-east-1",
            "endpoint_kinesis": state.kinesis_url,
            "endpoint_dynamodb": state.moto_url,
            "endpoint_s3": state.moto_url,
            "access_key_id": "000000000000",
            "secret_access_key": "local",
        },
        pipelines={"null": {"enabled": True}},
        backfill={"export_bucket": f"{name}-exports"},
        telemetry={"log_level": "warning"},
    )


def fill(state: LocalStackState, table: str) -> None:
    dynamodb = state.endpoints().client("dynamodb")
    create_table_without_stream(dynamodb, table)
    rng = random.Random(1)
    for start in range(0, ITEMS, 25):
        batch = [
            {"PutRequest": {"Item": order_item(i, rng)}}
            for i in range(start, min(ITEMS, start + 25))
        ]
        dynamodb.batch_write_item(RequestItems={table: batch})


async def export_arn(state: LocalStackState, name: str, table: str) -> str:
    endpoints = state.endpoints()
    async with endpoints.aio_client("dynamodb") as dynamodb:
        await dynamodb.update_continuous_backups(
            TableName=table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
        arn = (await dynamodb.describe_table(TableName=table))["Table"]["TableArn"]
        api = LocalExports(dynamodb, endpoints, files=4, pending_polls=0)
        description = await api.start(arn, f"{name}-exports", "exp", datetime.now(UTC))
        return str(description["ExportArn"])


def timed(backfill: Backfill) -> float:
    started = time.perf_counter()
    outcome = asyncio.run(backfill.run())
    elapsed = time.perf_counter() - started
    assert outcome.finished and outcome.items == ITEMS, outcome
    return ITEMS / elapsed


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-backfill-") as work,
        LocalStack(Path(work)) as state,
    ):
        name = "bench-backfill"
        table = f"{name}-orders"
        fill(state, table)
        client = state.endpoints().client
        client("dynamodb").create_table(**lease_table_definition(f"{name}-leases"))
        client("s3").create_bucket(Bucket=f"{name}-exports")
        config = settings(state, name)
        scan = Backfill(
            config,
            BackfillRequest(
                table=table, source="scan", segments=4, workers=1, check_stitching=False
            ),
        )
        scan_rate = timed(scan)
        arn = asyncio.run(export_arn(state, name, table))
        endpoints = state.endpoints()

        def api(dynamodb: Any) -> LocalExports:
            return LocalExports(dynamodb, endpoints, pending_polls=0)

        export = Backfill(
            config,
            BackfillRequest(
                table=table, source="export", export_arn=arn, workers=1, check_stitching=False
            ),
            export_api=api,
        )
        export_rate = timed(export)
    print(f"backfill_items_per_s_scan {scan_rate:.0f} items/s")
    print(f"backfill_items_per_s_export {export_rate:.0f} items/s")


if __name__ == "__main__":
    main()
