"""Verify's scans in the lease table (consumer/verify/snapshot.py): a running verify is joined
while a worker holds one of its segments or it has just begun; one whose workers are gone (a
crashed verify) or that is finished is ended and a new one begun, since verify's findings live
in the process and cannot be resumed."""

from __future__ import annotations

import asyncio

from checkpoints.table import lease_table_definition
from consumer.aws import AwsEndpoints
from consumer.snapshot.segments import SnapshotLeases
from consumer.verify.snapshot import SOURCE_PURPOSE, open_scan


def test_a_held_or_new_verify_is_joined_an_abandoned_or_finished_one_is_replaced(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    lease_table = f"{unique_name}-leases"
    endpoints.client("dynamodb").create_table(**lease_table_definition(lease_table))

    async def scenario() -> list[str]:
        async with endpoints.aio_client("dynamodb") as client:
            leases = SnapshotLeases(client, lease_table, lease_s=30)
            start = leases.now_ms() * 1000

            async def open_at(offset_s: float) -> str:
                info = await open_scan(
                    leases,
                    purpose=SOURCE_PURPOSE,
                    table="orders",
                    segments=2,
                    pipelines=("replication",),
                    now_us=start + int(offset_s * 1_000_000),
                )
                return info.snapshot_id

            ids = [await open_at(0), await open_at(1)]  # just begun: joined
            ids.append(await open_at(60))  # nobody holds a segment: a crashed run, replaced
            (part, _) = await leases.parts(ids[-1])
            lease = await leases.take(ids[-1], "worker-a", part)
            assert lease is not None
            ids.append(await open_at(120))  # a segment is held: joined
            for state in await leases.parts(ids[-1]):
                taken = (
                    lease
                    if state.name == part.name
                    else await leases.take(ids[-1], "worker-a", state)
                )
                assert taken is not None
                await leases.finish(ids[-1], taken, 0, 0)
            ids.append(await open_at(180))  # finished: a new one
            return ids

    ids = asyncio.run(scenario())
    assert ids[0] == ids[1]
    assert ids[2] != ids[1]
    assert ids[3] == ids[2]
    assert ids[4] != ids[3]
