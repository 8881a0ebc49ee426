"""LeaseHandle: what a shard processor gets for one leased shard.

The processor reads the shard from `start_position`, checkpoints as records become durable,
and watches `stop_requested`. On `StopReason.HANDOFF` or `SHUTDOWN` it stops reading, finishes
in-flight batches, checkpoints and returns (the lease then moves with no duplicates). On
`StopReason.LOST` (`lost` is set too) it stops at once: every checkpoint raises `LeaseLost`,
and the coordinator also cancels its task.

Checkpoints are monotonic: one at or behind the current position is ignored (returns False),
never written. They are serialised per handle, so concurrent calls cannot reorder writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum
from typing import Protocol, TypeVar

from checkpoints.errors import CheckpointRejected, LeaseLost, LeaseTableUnavailable
from checkpoints.model import Checkpoint, Lease

T = TypeVar("T")


class StopReason(StrEnum):
    LOST = "lost"
    HANDOFF = "handoff"
    SHUTDOWN = "shutdown"


class CheckpointWriter(Protocol):
    """The fenced writes a handle needs (LeaseTable implements them). Each raises `LeaseLost`
    when the lease is no longer (me, token), `LeaseTableUnavailable` after its retries."""

    async def checkpoint(self, key: str, me: str, token: int, checkpoint: Checkpoint) -> None: ...

    async def finish_shard(
        self, key: str, me: str, token: int, child_shard_ids: Iterable[str] = ()
    ) -> None: ...


class LeaseHandle:
    """One shard lease held by this worker under one fencing token. A fresh handle is made for
    every acquisition, so a stale handle can never act for a newer one."""

    def __init__(
        self,
        lease: Lease,
        worker_id: str,
        token: int,
        writer: CheckpointWriter,
        *,
        is_valid: Callable[[], bool] = lambda: True,
        on_shard_end: Callable[[LeaseHandle], None] | None = None,
        retry_delay_s: float = 0.5,
    ) -> None:
        self.lease_key = lease.key
        self.shard_id = lease.shard_id
        self.worker_id = worker_id
        self.token = token
        self.parent_shard_ids = lease.parent_shard_ids
        self.start_position: Checkpoint = lease.checkpoint
        self.stop_requested = asyncio.Event()
        self.lost = asyncio.Event()
        self.stop_reason: StopReason | None = None
        self._checkpoint = lease.checkpoint
        self._writer = writer
        self._is_valid = is_valid
        self._on_shard_end = on_shard_end
        self._retry_delay_s = retry_delay_s
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"LeaseHandle({self.shard_id!r}, token={self.token}, at={self._checkpoint})"

    @property
    def checkpointed(self) -> Checkpoint:
        """The last checkpoint written (or the start position)."""
        return self._checkpoint

    @property
    def finished(self) -> bool:
        return self._checkpoint.is_shard_end

    # --- signals (called by the coordinator) ------------------------------------------------

    def request_stop(self, reason: StopReason) -> None:
        if reason is StopReason.LOST:
            self.lost.set()
            self.stop_reason = StopReason.LOST
        elif self.stop_reason is None:
            self.stop_reason = reason
        self.stop_requested.set()

    async def wait_stop(self) -> StopReason:
        await self.stop_requested.wait()
        assert self.stop_reason is not None
        return self.stop_reason

    # --- checkpoints ------------------------------------------------------------------------

    async def checkpoint(self, sequence_number: str, sub_sequence_number: int = 0) -> bool:
        """Records that every record up to and including this one is durably processed.
        Returns False (and writes nothing) if it is not past the current checkpoint."""
        try:
            target = Checkpoint.after(sequence_number, sub_sequence_number)
        except ValueError as error:
            raise CheckpointRejected(str(error)) from error
        async with self._lock:
            if self.finished:
                raise CheckpointRejected(f"shard {self.shard_id} is already at SHARD_END")
            if not self._checkpoint.is_behind(target):
                return False
            await self._write(self._writer.checkpoint, target)
            self._checkpoint = target
            return True

    async def checkpoint_shard_end(self, child_shard_ids: Iterable[str] = ()) -> None:
        """Call once every record of the closed shard is durably processed: checkpoints
        SHARD_END and releases the lease, which lets the children start (invariant 4)."""
        children = tuple(child_shard_ids)
        async with self._lock:
            if self.finished:
                return
            await self._write(self._writer.finish_shard, children)
            self._checkpoint = Checkpoint.shard_end()
        if self._on_shard_end is not None:
            self._on_shard_end(self)

    # --- internals --------------------------------------------------------------------------

    def ensure_owned(self) -> None:
        """Raises LeaseLost unless the lease is still ours by this worker's own clock.

        The pipeline calls it before every sink write, as the handle does before every
        checkpoint: after an event-loop stall longer than the failover time, another worker
        may own the shard already, and our heartbeat has had no chance to find out.
        """
        if self.lost.is_set():
            raise LeaseLost(self.lease_key, "the lease was lost")
        if not self._is_valid():
            self.request_stop(StopReason.LOST)
            raise LeaseLost(self.lease_key, "this worker's heartbeat lapsed (local expiry)")

    async def _write(self, write: Callable[[str, str, int, T], Awaitable[None]], value: T) -> None:
        """A fenced write of (lease key, worker, token, `value`), retried while the lease is
        still ours (throttling never surfaces to the processor; losing the lease does)."""
        while True:
            self.ensure_owned()
            try:
                await write(self.lease_key, self.worker_id, self.token, value)
                return
            except LeaseLost:
                self.request_stop(StopReason.LOST)
                raise
            except LeaseTableUnavailable:
                await asyncio.sleep(self._retry_delay_s)
