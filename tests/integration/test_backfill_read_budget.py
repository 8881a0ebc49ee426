"""`--max-read-units` is one budget for the whole backfill, however many processes run it
(consumer/snapshot/read_budget.py): two processes started with R read at most R together."""

from __future__ import annotations

import asyncio
from typing import Any

from checkpoints.table import lease_table_definition
from consumer.local.stack import LocalStackState
from consumer.snapshot.backfill import Backfill, BackfillRequest
from tests.service_harness import Deployment
from tests.snapshot.world import create_world

ITEMS = 160
UNITS_PER_S = 4.0


def test_two_processes_given_r_read_units_read_at_most_r_together(
    local_stack: LocalStackState, unique_name: str
) -> None:
    deployment = Deployment(local_stack, unique_name, shards=1)
    create_world(deployment, ITEMS)
    dynamodb = deployment.endpoints.client("dynamodb")
    dynamodb.create_table(**lease_table_definition(f"{unique_name}-leases"))
    settings = deployment.settings(CONSUMER_BACKFILL__LEASE_S="3")

    async def both() -> list[Any]:
        runs = [
            Backfill(
                settings,
                BackfillRequest(
                    table=deployment.table,
                    source="scan",
                    segments=4,
                    workers=2,
                    max_read_units=UNITS_PER_S,
                    worker_id=worker,
                    page_items=5,
                ),
            ).run()
            for worker in ("a", "b")
        ]
        return list(await asyncio.gather(*runs))

    outcomes = asyncio.run(both())
    assert all(outcome.finished for outcome in outcomes)
    assert outcomes[0].items == ITEMS
    assert all(outcome.read_here > 0 for outcome in outcomes)  # both read
    # While both ran, each process's limiter had half the budget (both beat within a second).
    assert [outcome.lowest_read_share for outcome in outcomes] == [UNITS_PER_S / 2] * 2
    consumed = sum(outcome.read_units for outcome in outcomes)
    windows = [outcome.read_window for outcome in outcomes]
    first = min(window[0] for window in windows)
    last = max(window[1] for window in windows)
    # moto reports a fixed price per Scan call: 30+ pages of 5 items.
    assert consumed >= 5 * UNITS_PER_S
    # Token buckets: R per second over the window, plus one second of burst, plus the units
    # spent before a process sees the other join (at most a beat, 1 s, of half the budget)
    # and one page each in debt. Two processes each reading at R would spend twice as fast.
    allowed = UNITS_PER_S * (last - first) + 2.5 * UNITS_PER_S
    assert consumed <= allowed, (
        f"{consumed} units in {last - first:.1f} s: over {UNITS_PER_S}/s together"
    )
    print(f"backfill_read_units_per_s_two_processes={consumed / (last - first):.2f}")
    # The readers map holds no one once both have left.
    item = dynamodb.get_item(
        TableName=f"{unique_name}-leases",
        Key={"leaseKey": {"S": f"__snapshot__#{outcomes[0].snapshot_id}@readers"}},
    )["Item"]
    assert item["readers"]["M"] == {}
