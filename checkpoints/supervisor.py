"""The processor supervisor: one shard processor task per lease this worker holds.

It starts a task when a lease is acquired, restarts a processor that returns or fails without
having been asked to stop (fresh handle, last checkpoint, with a backoff), and stops them: a
lost lease at once (LOST, task cancelled), a shutdown after their in-flight work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass

import structlog

from checkpoints.context import LeaseContext
from checkpoints.errors import LeaseLost
from checkpoints.handle import LeaseHandle, StopReason
from checkpoints.heartbeat import Heartbeat
from checkpoints.model import Lease, TableSnapshot

log = structlog.get_logger(__name__)

# A shard processor: reads one shard through its handle until it is asked to stop or the shard
# ends (see LeaseHandle). Returning without either means "restart me" (after a backoff).
ShardProcessor = Callable[[LeaseHandle], Awaitable[None]]

_PROCESSOR_RESTART_MAX_S = 30.0


@dataclass
class HeldLease:
    """A lease running on this worker under fencing token `token`."""

    key: str
    token: int
    handle: LeaseHandle
    task: asyncio.Task[None] | None = None
    handoff_task: asyncio.Task[None] | None = None

    @property
    def handing_off(self) -> bool:
        return self.handoff_task is not None

    def finished_in(self, snapshot: TableSnapshot) -> bool:
        """Our own SHARD_END write landed but the processor has not returned yet."""
        lease = snapshot.lease(self.key)
        return lease is not None and lease.finished and lease.counter == self.token + 1


class ProcessorSupervisor:
    """Holds the leases running here (`held`) and their tasks. `touched` remembers when each
    lease key last entered or left `held`, so a scan older than that is not acted on."""

    def __init__(
        self,
        context: LeaseContext,
        processor: ShardProcessor,
        me: Heartbeat,
        *,
        on_shard_end: Callable[[], None],
    ) -> None:
        self._table, self._counters, self._clock = context.table, context.counters, context.clock
        self._retry_delay_s = min(0.5, context.settings.heartbeat_interval_s)
        self._processor = processor
        self._me = me
        self._on_shard_end = on_shard_end
        self.held: dict[str, HeldLease] = {}
        self.touched: dict[str, float] = {}
        self.closing = False  # leases taken from now on are not started, only released
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, lease: Lease, how: str) -> None:
        """Runs the processor of a lease just acquired (`how`: take, claim, force_steal)."""
        held = HeldLease(lease.key, lease.counter, self._new_handle(lease))
        self.held[lease.key] = held
        self.touched[lease.key] = self._clock()
        if self.closing:
            return  # taken as we stop: not started, but released with the others
        held.task = self.spawn(self._run(held), f"shard:{lease.key}")
        log.info("lease.acquired", worker=self._me.worker_id, shard=lease.shard_id, how=how,
                 checkpoint=str(lease.checkpoint), token=lease.counter)

    def spawn(self, coroutine: Awaitable[None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def forget(self, key: str) -> HeldLease | None:
        self.touched[key] = self._clock()
        return self.held.pop(key, None)

    def drop(self, key: str, reason: str) -> None:
        """The lease is no longer ours: its processor is told LOST and cancelled."""
        held = self.forget(key)
        if held is None:
            return
        self._counters["leases_lost"] += 1
        held.handle.request_stop(StopReason.LOST)
        for task in (held.task, held.handoff_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        log.info("lease.lost", worker=self._me.worker_id, shard=held.handle.shard_id,
                 reason=reason)

    def drop_all(self, reason: str) -> None:
        """We may no longer be the owner anywhere."""
        if self.held:
            log.warning("lease.dropping_all", worker=self._me.worker_id, reason=reason,
                        leases=len(self.held))
        for key in list(self.held):
            self.drop(key, reason)

    async def drain(self, deadline: float) -> None:
        """Shutdown: every processor is asked to stop (SHUTDOWN) and waited for until
        `deadline`; what is still running then is cancelled."""
        self.closing = True
        for held in self.held.values():
            held.handle.request_stop(StopReason.SHUTDOWN)
        pending = [h.handoff_task for h in self.held.values() if h.handoff_task is not None]
        pending += [h.task for h in self.held.values() if h.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=max(deadline - self._clock(), 0.1))
        await cancel_all(list(self._tasks))

    async def abort(self, loops: list[asyncio.Task[None]]) -> None:
        """Crash-like stop: `loops` and every processor are cancelled together, nothing written."""
        self.closing = True
        await cancel_all(loops + list(self._tasks))
        self.held.clear()

    async def stop_processor(self, held: HeldLease, timeout_s: float) -> None:
        """Waits for a processor asked to stop; cancels it after `timeout_s`."""
        task = held.task
        if task is None or task.done():
            return
        done, _ = await asyncio.wait([task], timeout=timeout_s)
        if not done:
            self._counters["processor_stop_timeouts"] += 1
            log.warning("lease.processor_cancelled", shard=held.key)
            await cancel_all([task])

    def _new_handle(self, lease: Lease) -> LeaseHandle:
        return LeaseHandle(
            lease,
            self._me.worker_id,
            lease.counter,
            self._table,
            is_valid=self._me.is_valid,
            on_shard_end=self._shard_ended,
            retry_delay_s=self._retry_delay_s,
        )

    def _shard_ended(self, handle: LeaseHandle) -> None:
        held = self.held.get(handle.lease_key)
        if held is not None and held.handle is handle:
            self.forget(handle.lease_key)
        self._counters["shards_ended"] += 1
        log.info("lease.shard_ended", worker=self._me.worker_id, shard=handle.shard_id)
        self._on_shard_end()

    async def _run(self, held: HeldLease) -> None:
        """Runs the processor, and restarts it as the module docstring says."""
        backoff = 1.0
        while True:
            handle = held.handle
            try:
                await self._processor(handle)
            except LeaseLost:
                pass
            except Exception:
                self._counters["processor_failures"] += 1
                log.exception("lease.processor_failed", shard=handle.shard_id)
            if handle.lost.is_set():
                if self.held.get(held.key) is held:
                    self.drop(held.key, "the lease table refused a checkpoint")
                return
            if handle.finished or handle.stop_requested.is_set():
                return
            with suppress(TimeoutError):
                await asyncio.wait_for(handle.stop_requested.wait(), backoff)
                return
            backoff = min(backoff * 2, _PROCESSOR_RESTART_MAX_S)
            resumed = Lease(
                key=held.key,
                shard_id=handle.shard_id,
                owner=self._me.worker_id,
                counter=held.token,
                checkpoint=handle.checkpointed,
                parent_shard_ids=handle.parent_shard_ids,
            )
            held.handle = self._new_handle(resumed)


async def cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancels tasks and waits until they are done, logging any that had failed."""
    pending = [task for task in tasks if task is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    await asyncio.wait(pending)
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            log.error("lease.task_failed", task=task.get_name(), error=repr(task.exception()))
