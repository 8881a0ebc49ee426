"""Issue 15.3: no sink write and no checkpoint after the lease's local expiry.

A chaos run saw a worker apply a record 6.1 s after another had taken its shard: the event
loop stalled inside a sink write, past the failover time, so the heartbeat could not find out
in time. Every sink write (and every checkpoint) now checks the lease's local validity first.
The stall here is real: a blocking sleep inside a sink write, longer than the expiry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson
import pytest

from checkpoints.errors import LeaseLost
from checkpoints.handle import LeaseHandle
from checkpoints.model import Checkpoint, Lease
from consumer.pipeline.processor import Route, ShardPipeline
from consumer.pipeline.sink import NO_FAILURES, Failures
from consumer.records import ChangeEvent
from consumer.records.batch import RawRecord, ReadBatch
from tests.change_factory import destination_record
from tests.pipeline_fakes import MemoryDlq
from tests.unit.test_leases_handle import FakeWriter

EXPIRY_S = 0.3


class StallingSink:
    """Blocks the whole event loop (time.sleep) in its first write, as a slow hook might."""

    name = "stalling"
    buffered = False

    def __init__(self) -> None:
        self.applied: list[tuple[str, float]] = []

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        if not self.applied:
            time.sleep(EXPIRY_S * 2)  # noqa: ASYNC251  # the stall under test
        self.applied.extend((event.event_id, time.monotonic()) for event in events)
        return NO_FAILURES

    def wants_flush(self, now_monotonic: float) -> bool:
        return False

    async def flush(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def batch(first: int) -> ReadBatch:
    records = [
        RawRecord(
            orjson.dumps(destination_record("INSERT", f"k{n}", n, new={"v": {"N": "1"}})),
            f"{n:056d}",
            0,
            "p",
        )
        for n in range(first, first + 3)
    ]
    return ReadBatch("s1", records, 0, records[-1].sequence_number)


async def test_a_stalled_loop_applies_and_checkpoints_nothing_after_the_local_expiry() -> None:
    valid_until = time.monotonic() + EXPIRY_S  # the heartbeat never runs: the loop is stalled
    writer = FakeWriter()
    handle = LeaseHandle(
        Lease("s1", "s1", owner="me", counter=3, checkpoint=Checkpoint.trim_horizon()),
        "me",
        3,
        writer,
        is_valid=lambda: time.monotonic() < valid_until,
    )
    sink = StallingSink()
    pipeline = ShardPipeline(
        "stream", "s1", [Route(sink)], MemoryDlq(), handle, checkpoint_interval_s=0.0
    )
    with pytest.raises(LeaseLost):
        await pipeline.process(batch(1))  # the write stalls past the expiry; no checkpoint
    with pytest.raises(LeaseLost):
        await pipeline.process(batch(10))  # and no further write
    assert all(applied_at <= valid_until + EXPIRY_S * 2 for _, applied_at in sink.applied)
    assert len(sink.applied) == 3  # only the write that began while the lease was valid
    assert writer.writes == []
    assert handle.lost.is_set()
