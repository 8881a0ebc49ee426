"""Issue 15.3 on the local stack: no replica request after the lease's local expiry, even when
the expiry passes in the middle of a sink write.

The chaos run (`make chaos`, its event-loop stall) saw a worker's replica writes arrive up to
6.8 s after another worker held the shard: the pipeline checks the lease before each sink
write, but one replication write runs the transform hook for each key in turn (one call at a
time, in a thread), and the requests that follow a slow call went out without a look at the
lease. Each request is now fenced (`consumer.aws.fencing`). Here the hook is slow for the
first key, past the local expiry; no key of that write may reach moto's replica table.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from checkpoints.errors import LeaseLost
from checkpoints.handle import LeaseHandle
from checkpoints.model import Checkpoint, Lease
from consumer.pipeline.processor import Route, ShardPipeline
from consumer.pipeline.replication import ReplicationSection, ReplicationSink
from consumer.records import ChangeEvent
from consumer.records.batch import RawRecord, ReadBatch
from tests.change_factory import destination_record
from tests.pipeline_fakes import MemoryDlq
from tests.replica_table import live_items
from tests.unit.test_leases_handle import FakeWriter

pytestmark = pytest.mark.integration

EXPIRY_S = 0.5


def batch(keys: list[str]) -> ReadBatch:
    records = [
        RawRecord(
            orjson.dumps(destination_record("INSERT", key, n, new={"v": {"N": "1"}})),
            f"{n:056d}",
            0,
            "p",
        )
        for n, key in enumerate(keys, start=1)
    ]
    return ReadBatch("s1", records, 0, records[-1].sequence_number)


async def test_no_replica_request_leaves_after_the_local_expiry_within_one_write(
    replica: tuple[Any, str],
) -> None:
    client, table = replica
    valid_until = time.monotonic() + EXPIRY_S
    hook_calls: list[str] = []

    def slow_first_hook(event: ChangeEvent, item: dict[str, Any]) -> dict[str, Any]:
        if not hook_calls:
            time.sleep(EXPIRY_S * 2)  # a slow hook: the lease's local expiry passes meanwhile
        hook_calls.append(str(event.keys.python["pk"]))
        return item

    handle = LeaseHandle(
        Lease("s1", "s1", owner="me", counter=3, checkpoint=Checkpoint.trim_horizon()),
        "me",
        3,
        FakeWriter(),
        is_valid=lambda: time.monotonic() < valid_until,
    )
    sink = ReplicationSink(client, ReplicationSection(table=table), slow_first_hook)
    pipeline = ShardPipeline(
        "stream", "s1", [Route(sink)], MemoryDlq(), handle, checkpoint_interval_s=0.0
    )
    with pytest.raises(LeaseLost):
        await pipeline.process(batch(["a", "b", "c"]))  # the write began while the lease was valid
    assert hook_calls  # the write did start
    assert await live_items(client, table) == []  # and sent nothing after the expiry
    assert handle.lost.is_set()
