"""The lease table on moto: creation, conditional ownership changes and fencing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from checkpoints.errors import LeaseLost
from checkpoints.model import Checkpoint, Lease
from checkpoints.table import FenceOutcome, LeaseTable, lease_table_definition
from consumer.aws import AwsEndpoints

pytestmark = pytest.mark.integration


@pytest.fixture
async def table(endpoints: AwsEndpoints, unique_name: str) -> AsyncIterator[LeaseTable]:
    async with LeaseTable.open(endpoints, f"{unique_name}-leases") as table:
        await table.create_if_missing()
        yield table


async def test_the_table_is_created_once_on_demand_with_kcls_key(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    async with LeaseTable.open(endpoints, unique_name) as table:
        assert not await table.exists()
        assert await table.create_if_missing() is True
        assert await table.create_if_missing() is False
        assert await table.exists()
    description = endpoints.client("dynamodb").describe_table(TableName=unique_name)["Table"]
    assert description["KeySchema"] == [{"AttributeName": "leaseKey", "KeyType": "HASH"}]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert lease_table_definition(unique_name)["BillingMode"] == "PAY_PER_REQUEST"


async def test_ownership_changes_are_conditional_and_bump_the_token(table: LeaseTable) -> None:
    assert await table.create_lease(Lease("s1", "s1"))
    assert not await table.create_lease(Lease("s1", "s1", owner="intruder"))
    taken = await table.take("s1", None, 0, "w1")
    assert taken is not None
    assert (taken.owner, taken.counter, taken.owner_switches) == ("w1", 1, 1)
    assert await table.take("s1", None, 0, "w2") is None  # stale expectation
    claimed = await table.claim("s1", "w1", 1)
    assert claimed is not None
    assert claimed.counter == 2
    assert await table.transfer("s1", "w1", 2, "w2")
    lease = (await table.scan()).lease("s1")
    assert lease is not None
    assert (lease.owner, lease.counter) == ("w2", 3)
    assert await table.transfer("s1", "w2", 3, None)  # release
    lease = (await table.scan()).lease("s1")
    assert lease is not None
    assert (lease.owner, lease.counter) == (None, 4)
    assert table.stats.conditional_failures["take"] == 1
    assert table.stats.conditional_failures["create_lease"] == 1


async def test_a_stale_owner_cannot_checkpoint(table: LeaseTable) -> None:
    await table.create_lease(Lease("s1", "s1"))
    assert await table.take("s1", None, 0, "old") is not None
    await table.checkpoint("s1", "old", 1, Checkpoint.after("100"))
    assert await table.take("s1", "old", 1, "new") is not None  # e.g. after a failover
    with pytest.raises(LeaseLost):
        await table.checkpoint("s1", "old", 1, Checkpoint.after("200"))
    with pytest.raises(LeaseLost):
        await table.finish_shard("s1", "old", 1)
    lease = (await table.scan()).lease("s1")
    assert lease is not None
    assert lease.checkpoint == Checkpoint.after("100")
    await table.checkpoint("s1", "new", 2, Checkpoint.after("150", 3))
    lease = (await table.scan()).lease("s1")
    assert lease is not None
    assert lease.checkpoint == Checkpoint.after("150", 3)
    assert lease.owner_switches == 0


async def test_checkpoint_and_shard_end(table: LeaseTable) -> None:
    await table.create_lease(Lease("s1", "s1"))
    await table.take("s1", None, 0, "w")
    await table.checkpoint("s1", "w", 1, Checkpoint.after("300"))
    lease = (await table.scan()).lease("s1")
    assert lease is not None
    assert (lease.checkpoint, lease.pending_checkpoint) == (Checkpoint.after("300"), None)
    await table.finish_shard("s1", "w", 1, ["c1", "c2"])
    lease = (await table.scan()).lease("s1")
    assert lease is not None
    assert lease.finished
    assert lease.owner is None
    assert lease.child_shard_ids == {"c1", "c2"}


async def test_handoff_request_transfer_and_force_steal(table: LeaseTable) -> None:
    await table.create_lease(Lease("s1", "s1"))
    await table.take("s1", None, 0, "owner")
    assert await table.request_handoff("s1", "owner", 1, "taker")
    assert not await table.request_handoff("s1", "owner", 1, "other")  # one request at a time
    assert not await table.transfer("s1", "owner", 1, "other", requested_by="other")
    assert await table.decline_handoff("s1", "owner", 1, "taker")
    assert await table.request_handoff("s1", "owner", 1, "taker")
    assert await table.transfer("s1", "owner", 1, "taker", requested_by="taker")
    lease = (await table.scan()).lease("s1")
    assert lease is not None
    assert (lease.owner, lease.counter, lease.handoff_to) == ("taker", 2, None)
    assert await table.request_handoff("s1", "taker", 2, "third")
    stolen = await table.force_steal("s1", "taker", 2, "third")
    assert stolen is not None
    assert (stolen.owner, stolen.counter, stolen.handoff_to) == ("third", 3, None)


async def test_a_fenced_worker_cannot_heartbeat_until_it_registers_again(
    table: LeaseTable,
) -> None:
    counter = await table.register_worker("w1")
    assert await table.heartbeat("w1", counter, 0) == counter + 1
    assert await table.fence_worker("w1", counter, "w2") is FenceOutcome.ALIVE  # it moved on
    assert await table.fence_worker("w1", counter + 1, "w2") is FenceOutcome.FENCED
    assert await table.fence_worker("w1", counter + 1, "w3") is FenceOutcome.ALREADY_FENCED
    assert await table.heartbeat("w1", counter + 1, 0) is None
    again = await table.register_worker("w1")
    assert await table.heartbeat("w1", again, 0) == again + 1
    assert await table.fence_worker("nobody", 1, "w2") is FenceOutcome.GONE
    snapshot = await table.scan()
    assert snapshot.workers["w1"].fenced_by is None
    assert await table.delete_worker("w1", again + 1)
    assert "w1" not in (await table.scan()).workers


async def test_only_finished_leases_are_deleted(table: LeaseTable) -> None:
    await table.create_lease(Lease("s1", "s1"))
    await table.create_lease(Lease("s2", "s2", checkpoint=Checkpoint.shard_end()))
    assert not await table.delete_finished_lease("s1")
    assert await table.delete_finished_lease("s2")
    assert [lease.key for lease in (await table.scan()).leases] == ["s1"]
