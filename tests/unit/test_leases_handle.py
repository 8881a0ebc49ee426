"""The checkpoint API a shard processor uses: monotonic, two-phase, fenced."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from checkpoints.errors import CheckpointRejected, LeaseLost, LeaseTableUnavailable
from checkpoints.handle import LeaseHandle, StopReason
from checkpoints.model import Checkpoint, Lease


class FakeWriter:
    """Records fenced writes; can be told to fail."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, Checkpoint | tuple[str, ...]]] = []
        self.unavailable = 0  # fail this many calls with LeaseTableUnavailable first
        self.lost = False
        self.delay_s = 0.0

    async def _maybe_fail(self) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.unavailable:
            self.unavailable -= 1
            raise LeaseTableUnavailable("throttled")
        if self.lost:
            raise LeaseLost("s1", "refused")

    async def checkpoint(self, key: str, me: str, token: int, checkpoint: Checkpoint) -> None:
        await self._maybe_fail()
        self.writes.append(("checkpoint", checkpoint))

    async def finish_shard(
        self, key: str, me: str, token: int, child_shard_ids: Iterable[str] = ()
    ) -> None:
        await self._maybe_fail()
        self.writes.append(("shard_end", tuple(child_shard_ids)))


def make_handle(
    writer: FakeWriter, checkpoint: Checkpoint | None = None, valid: bool = True
) -> LeaseHandle:
    lease = Lease("s1", "s1", owner="me", counter=3, checkpoint=checkpoint or Checkpoint.latest())
    return LeaseHandle(lease, "me", 3, writer, is_valid=lambda: valid, retry_delay_s=0.001)


async def test_checkpoints_only_move_forward() -> None:
    writer = FakeWriter()
    handle = make_handle(writer)
    assert await handle.checkpoint("100")
    assert not await handle.checkpoint("99")  # behind: ignored, nothing written
    assert not await handle.checkpoint("100")  # equal: ignored
    assert await handle.checkpoint("100", 1)  # a later sub-sequence of the same record
    assert await handle.checkpoint("1000")  # longer digit string, compared as an integer
    assert writer.writes == [
        ("checkpoint", Checkpoint.after("100")),
        ("checkpoint", Checkpoint.after("100", 1)),
        ("checkpoint", Checkpoint.after("1000")),
    ]
    assert handle.checkpointed == Checkpoint.after("1000")


async def test_concurrent_checkpoints_cannot_reorder_writes() -> None:
    writer = FakeWriter()
    writer.delay_s = 0.01
    handle = make_handle(writer)
    await asyncio.gather(handle.checkpoint("7"), handle.checkpoint("5"), handle.checkpoint("9"))
    written = [int(c.sequence_number or 0) for _, c in writer.writes if isinstance(c, Checkpoint)]
    assert written == sorted(written)
    assert handle.checkpointed == Checkpoint.after("9")


async def test_shard_end_is_final() -> None:
    writer = FakeWriter()
    ended: list[LeaseHandle] = []
    lease = Lease("s1", "s1", owner="me", counter=3)
    handle = LeaseHandle(lease, "me", 3, writer, on_shard_end=ended.append)
    await handle.checkpoint_shard_end(["c1", "c2"])
    await handle.checkpoint_shard_end()  # idempotent
    assert handle.finished
    assert ended == [handle]
    assert writer.writes == [("shard_end", ("c1", "c2"))]
    with pytest.raises(CheckpointRejected):
        await handle.checkpoint("100")


async def test_a_malformed_sequence_number_is_rejected() -> None:
    with pytest.raises(CheckpointRejected):
        await make_handle(FakeWriter()).checkpoint("LATEST")


async def test_a_refused_checkpoint_means_the_lease_is_lost() -> None:
    writer = FakeWriter()
    writer.lost = True
    handle = make_handle(writer)
    with pytest.raises(LeaseLost):
        await handle.checkpoint("100")
    assert handle.lost.is_set()
    assert handle.stop_reason is StopReason.LOST
    writer.lost = False
    with pytest.raises(LeaseLost):  # and it stays lost, without asking the table
        await handle.checkpoint("200")
    assert writer.writes == []


async def test_no_checkpoint_after_the_workers_heartbeat_lapsed() -> None:
    writer = FakeWriter()
    handle = make_handle(writer, valid=False)
    with pytest.raises(LeaseLost, match="local expiry"):
        await handle.checkpoint("100")
    assert handle.lost.is_set()
    assert writer.writes == []


async def test_throttling_is_retried_while_the_lease_is_held() -> None:
    writer = FakeWriter()
    writer.unavailable = 3
    handle = make_handle(writer)
    assert await handle.checkpoint("100")
    assert writer.writes == [("checkpoint", Checkpoint.after("100"))]


async def test_stop_reasons() -> None:
    handle = make_handle(FakeWriter())
    handle.request_stop(StopReason.HANDOFF)
    handle.request_stop(StopReason.SHUTDOWN)  # the first planned reason stays
    assert await handle.wait_stop() is StopReason.HANDOFF
    assert not handle.lost.is_set()
    handle.request_stop(StopReason.LOST)  # losing the lease overrides any plan
    assert handle.stop_reason is StopReason.LOST
    assert handle.lost.is_set()
