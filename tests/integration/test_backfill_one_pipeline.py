"""A re-snapshot of one pipeline (`--pipelines search`) beside the live service (issue 17,
"Per pipeline"): only that pipeline receives the snapshot, and the live service's shard leases
and the other pipelines are left as they were."""

from __future__ import annotations

import asyncio
from pathlib import Path

from checkpoints.model import Checkpoint, Lease, lease_to_item
from checkpoints.table import lease_table_definition
from consumer.local.stack import LocalStackState
from consumer.pipeline.search.local_index import LocalSearchIndex
from consumer.pipeline.search.settings import LocalIndexSettings
from consumer.snapshot.backfill import Backfill, BackfillRequest
from tests.service_harness import Deployment
from tests.snapshot.world import create_world

ITEMS = 40


async def _indexed(index: str, directory: Path) -> int:
    local = LocalSearchIndex(LocalIndexSettings(index=index, directory=directory))
    try:
        return await local.count()
    finally:
        await local.aclose()


def test_a_search_only_backfill_fills_the_index_and_leaves_replica_and_shard_leases_alone(
    local_stack: LocalStackState, unique_name: str, tmp_path: Path
) -> None:
    deployment = Deployment(local_stack, unique_name, shards=1)
    create_world(deployment, ITEMS)
    dynamodb = deployment.endpoints.client("dynamodb")
    lease_table = f"{unique_name}-leases"
    dynamodb.create_table(**lease_table_definition(lease_table))
    # The live service holds its shard with a checkpoint (replication and search enabled).
    live = Lease(
        key="shardId-000000000000",
        shard_id="shardId-000000000000",
        owner="live-worker",
        counter=7,
        checkpoint=Checkpoint.after("49600000000000000000000000000000000000000000000000000002"),
    )
    dynamodb.put_item(TableName=lease_table, Item=lease_to_item(live))
    before = dynamodb.get_item(TableName=lease_table, Key={"leaseKey": {"S": live.key}})["Item"]
    search_dir = tmp_path / "search"
    settings = deployment.settings(
        CONSUMER_PIPELINES__SEARCH__ENABLED="true",
        CONSUMER_PIPELINES__SEARCH__LOCAL_PATH=str(search_dir),
        CONSUMER_BACKFILL__LEASE_S="3",
    )
    request = BackfillRequest(
        table=deployment.table, source="scan", segments=2, pipelines=("search",)
    )
    outcome = asyncio.run(Backfill(settings, request).run())
    assert outcome.finished and outcome.items == ITEMS
    assert asyncio.run(_indexed(settings.pipelines.search.index, search_dir)) == ITEMS
    assert deployment.replica_items() == []  # replication, enabled, got nothing
    after = dynamodb.get_item(TableName=lease_table, Key={"leaseKey": {"S": live.key}})["Item"]
    assert after == before  # the live service's lease and checkpoint are untouched
