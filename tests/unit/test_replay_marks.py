"""The replay's attributes on lease items: fenced writes, read back with the leases, retried
when the table is briefly unavailable."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from checkpoints import Checkpoint, Lease, LeaseHandle
from checkpoints.model import lease_to_item, worker_key
from consumer.replay.shard_task import ShardProgressWriter
from consumer.replay.status import ReplayMarks, ShardStatus, state_from_items


class Client:
    def __init__(self, errors: list[str] | None = None) -> None:
        self.errors = errors or []
        self.updates: list[dict[str, Any]] = []

    async def update_item(self, **request: Any) -> dict[str, Any]:
        if self.errors:
            code = self.errors.pop(0)
            raise ClientError({"Error": {"Code": code, "Message": code}}, "UpdateItem")
        self.updates.append(request)
        return {}


class NoCheckpoints:
    async def checkpoint(self, key: str, me: str, token: int, checkpoint: Checkpoint) -> None:
        raise AssertionError("not used")

    async def finish_shard(
        self, key: str, me: str, token: int, child_shard_ids: Iterable[str] = ()
    ) -> None:
        raise AssertionError("not used")


def handle() -> LeaseHandle:
    lease = Lease("shard-1", "shard-1", owner="me", counter=7, checkpoint=Checkpoint.trim_horizon())
    return LeaseHandle(lease, "me", 7, NoCheckpoints())


async def test_writes_are_fenced_by_owner_and_token_and_add_records() -> None:
    client = Client()
    marks = ReplayMarks(client, "r-leases")
    assert await marks.mark_end(handle(), "reached-to", 5000, records=12, at_ms=4900)
    (update,) = client.updates
    assert update["ConditionExpression"] == "#owner = :me AND #counter = :token"
    assert update["ExpressionAttributeValues"][":me"] == {"S": "me"}
    assert update["ExpressionAttributeValues"][":token"] == {"N": "7"}
    assert update["UpdateExpression"].endswith("ADD #records :records")
    assert update["Key"] == {"leaseKey": {"S": "shard-1"}}


async def test_a_lost_lease_is_not_an_error_but_false() -> None:
    marks = ReplayMarks(Client(["ConditionalCheckFailedException"]), "r-leases")
    assert not await marks.add_progress(handle(), 3, 100)


async def test_the_end_mark_is_retried_until_it_is_written() -> None:
    client = Client(["ThrottlingException", "InternalServerError"])
    writer = ShardProgressWriter(ReplayMarks(client, "r-leases"), handle())
    writer.pending_records = 5
    await writer.end("tip", 5000)
    assert len(client.updates) == 1 and writer.pending_records == 0


async def test_a_failed_progress_write_keeps_the_count_for_the_next_one() -> None:
    client = Client(["ThrottlingException"])
    writer = ShardProgressWriter(ReplayMarks(client, "r-leases"), handle(), interval_s=0)
    writer.pending_records = 5
    await writer.write_now()
    assert writer.pending_records == 5
    await writer.write_now()
    assert writer.pending_records == 0 and len(client.updates) == 1


def test_state_is_read_from_the_lease_items() -> None:
    parent = lease_to_item(Lease("p", "p", checkpoint=Checkpoint.shard_end()))
    child = {
        **lease_to_item(Lease("c", "c", owner="w1", parent_shard_ids=frozenset({"p"}))),
        "replayRecords": {"N": "40"},
        "replayAtMs": {"N": "1234"},
        "replayDoneToMs": {"N": "5000"},
        "replayEnd": {"S": "tip"},
    }
    heartbeat = {"leaseKey": {"S": worker_key("w1")}, "workerId": {"S": "w1"}}
    state = state_from_items([child, heartbeat, parent])
    assert state.workers == frozenset({"w1"})
    assert state.shards == (
        ShardStatus("c", frozenset({"p"}), False, 40, 1234, 5000, "tip", None),
        ShardStatus("p", finished=True),
    )


@pytest.mark.parametrize("code", ["ValidationException"])
async def test_other_errors_propagate(code: str) -> None:
    with pytest.raises(ClientError):
        await ReplayMarks(Client([code]), "r-leases").add_progress(handle(), 1, 1)
