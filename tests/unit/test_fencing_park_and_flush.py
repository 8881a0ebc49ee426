"""Issue 15.3: "Make each sink write and each checkpoint check the lease's local validity".

Sink writes were fenced; two other writes of a shard were not: parking a record in the
dead-letter queue, and flushing a buffered sink (audit, which is not versioned: a late object
is a duplicate nobody can tell apart). Both now check the lease first and are fenced request
by request, like a sink write. A retry inside a write (audit's PutObject, after a backoff) is
a new request: it checks the lease again.
"""

from __future__ import annotations

import time

import orjson
import pytest

from checkpoints.errors import LeaseLost
from checkpoints.handle import LeaseHandle
from checkpoints.model import Checkpoint, Lease
from consumer.aws.fencing import fenced
from consumer.pipeline.processor import Route, ShardPipeline
from consumer.pipeline.sink import SinkError
from consumer.records.batch import RawRecord, ReadBatch
from tests.change_factory import destination_record
from tests.pipeline_fakes import MemoryDlq
from tests.unit.test_audit_sink import make_sink
from tests.unit.test_audit_support import ManualClock, MemoryStore, change_events, client_error
from tests.unit.test_leases_handle import FakeWriter


class Lease_:
    """The lease's local validity, switched by the test (the heartbeat never runs here)."""

    def __init__(self) -> None:
        self.valid = True

    def handle(self) -> LeaseHandle:
        lease = Lease("s1", "s1", owner="me", counter=3, checkpoint=Checkpoint.trim_horizon())
        return LeaseHandle(lease, "me", 3, FakeWriter(), is_valid=lambda: self.valid)


def batch(*payloads: bytes) -> ReadBatch:
    records = [RawRecord(data, f"{n:056d}", 0, "p") for n, data in enumerate(payloads, 1)]
    return ReadBatch("s1", records, 0, records[-1].sequence_number)


def good(n: int) -> bytes:
    return orjson.dumps(destination_record("INSERT", f"k{n}", n, new={"v": {"N": "1"}}))


async def test_a_shard_whose_lease_lapsed_parks_nothing() -> None:
    lease = Lease_()
    dlq = MemoryDlq()
    pipeline = ShardPipeline("stream", "s1", [], dlq, lease.handle(), checkpoint_interval_s=0.0)
    lease.valid = False  # e.g. the loop stalled past the local expiry before this batch
    with pytest.raises(LeaseLost):
        await pipeline.process(batch(b"not json: undecodable, so parked"))
    assert dlq.parked == []  # the next owner reads it again and parks it


async def test_a_shard_whose_lease_lapsed_flushes_no_audit_object() -> None:
    lease = Lease_()
    store = MemoryStore()
    audit = make_sink(store, clock=ManualClock(time.monotonic()), max_age_s=3600)
    pipeline = ShardPipeline(
        "stream", "s1", [Route(audit)], MemoryDlq(), lease.handle(), checkpoint_interval_s=0.0
    )
    await pipeline.process(batch(good(1), good(2)))  # buffered, not yet due
    assert audit.pending_records == 2
    lease.valid = False
    with pytest.raises(LeaseLost):
        await pipeline.drain()  # flushes and checkpoints: neither may happen now
    assert store.requests == []


async def test_an_audit_put_is_not_retried_after_the_lease_lapsed() -> None:
    store = MemoryStore(failures=[client_error("SlowDown", 503)])
    audit = make_sink(store, put_attempts=4)
    await audit.write(change_events(range(2)))
    valid_until = time.monotonic() + 60

    def ensure_owned() -> None:
        if store.requests:  # the lease lapses while the first PutObject is under way
            nonlocal valid_until
            valid_until = min(valid_until, time.monotonic())
        if time.monotonic() >= valid_until:
            raise LeaseLost("s1", "local expiry")

    with pytest.raises(SinkError) as raised, fenced(ensure_owned):
        await audit.flush()
    assert isinstance(raised.value.__cause__, LeaseLost)
    assert len(store.requests) == 1  # the throttled try; no retry after the expiry
    assert audit.pending_records == 2  # kept: written by whoever owns the shard next
