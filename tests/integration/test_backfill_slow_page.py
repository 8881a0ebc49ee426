"""A page that takes longer than the part's lease to apply keeps its part.

Seen in the export convergence test on a loaded machine: a data file's page (up to 1,000
items) took more than `backfill.lease_s` to apply, its lease expired mid-page, the checkpoint
was refused, the part was taken again and the same page started over, forever. The lease is
renewed while a page is applied (consumer/snapshot/backfill.py, `_renewing`)."""

from __future__ import annotations

import asyncio

from checkpoints.table import lease_table_definition
from consumer.local.stack import LocalStackState
from consumer.snapshot.backfill import _renewing
from consumer.snapshot.segments import SnapshotLeases
from consumer.snapshot.table_reader import begin_scan_snapshot
from tests.service_harness import Deployment

LEASE_S = 2.0


def test_a_part_stays_ours_while_a_page_takes_twice_its_lease_to_apply(
    local_stack: LocalStackState, unique_name: str
) -> None:
    deployment = Deployment(local_stack, unique_name, shards=1)
    lease_table = f"{unique_name}-leases"
    deployment.endpoints.client("dynamodb").create_table(**lease_table_definition(lease_table))

    async def scenario() -> tuple[bool, bool, int]:
        async with deployment.endpoints.aio_client("dynamodb") as client:
            leases = SnapshotLeases(client, lease_table, lease_s=LEASE_S)
            other = SnapshotLeases(client, lease_table, lease_s=LEASE_S)
            info = await begin_scan_snapshot(
                leases,
                snapshot_id="slow",
                purpose="backfill",
                table="t",
                segments=1,
                pipelines=("replication",),
                now_us=1,
            )
            (part,) = await leases.parts(info.snapshot_id)
            lease = await leases.take(info.snapshot_id, "me", part)
            assert lease is not None
            await _renewing(leases, info, lease, asyncio.sleep(2 * LEASE_S))  # the slow page
            owned = leases.still_owned(lease)
            (seen,) = await other.parts(info.snapshot_id)  # another worker looks for work
            taken = await other.take(info.snapshot_id, "other", seen)
            await leases.checkpoint(info.snapshot_id, lease, {"key": {}}, 5, 5, 10)
            (after,) = await leases.parts(info.snapshot_id)
            return owned, taken is not None, after.ordinal

    owned, available_to_other, ordinal = asyncio.run(scenario())
    assert owned  # by our clock
    assert not available_to_other  # by the table: the other worker cannot take it
    assert ordinal == 5  # and our checkpoint after the slow page is accepted
