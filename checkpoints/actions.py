"""The action executor: carries out the planner's actions and the coordinator's releases, each
change of ownership one conditional write of the lease table (a take after fencing a dead
owner's heartbeat, a handoff after the final checkpoint).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping

import structlog

from checkpoints.context import TABLE_ERRORS, LeaseContext
from checkpoints.handle import LeaseHandle, StopReason
from checkpoints.heartbeat import Heartbeat
from checkpoints.model import Lease
from checkpoints.planner import (
    Action,
    Claim,
    DeclineHandoff,
    DeleteWorker,
    Drop,
    Fence,
    ForceSteal,
    HandOff,
    RequestHandoff,
    Take,
    plan_release,
)
from checkpoints.supervisor import HeldLease, ProcessorSupervisor
from checkpoints.table import FenceOutcome

log = structlog.get_logger(__name__)

_MAX_CONCURRENT_WRITES = 16


class ActionExecutor:
    """Writes the lease table for the planner's actions and starts or stops processors through
    the supervisor. `my_requests` are the handoffs this worker asked for (key -> when).
    `wake` is set when the table should be read again now (a write met a conflict)."""

    def __init__(
        self,
        context: LeaseContext,
        me: Heartbeat,
        supervisor: ProcessorSupervisor,
        *,
        wake: asyncio.Event,
    ) -> None:
        self._settings, self._table = context.settings, context.table
        self._counters, self._clock = context.counters, context.clock
        self._me = me
        self._supervisor = supervisor
        self._wake = wake
        self.my_requests: dict[str, float] = {}
        # Until then this worker takes no lease by itself (it let one go: see relinquish).
        self._taking_paused_until = float("-inf")
        self._write_slots = asyncio.Semaphore(_MAX_CONCURRENT_WRITES)

    def taking_paused_s(self) -> float:
        return max(0.0, self._taking_paused_until - self._clock())

    async def execute(self, actions: Iterable[Action]) -> None:
        fences: dict[Fence, asyncio.Task[FenceOutcome]] = {}
        writes: list[Awaitable[None]] = []
        for action in actions:
            match action:
                case Drop(key, reason):
                    self._supervisor.drop(key, reason)
                case HandOff(key, to, token):
                    self._begin_handoff(key, to, token)
                case _:  # a write
                    if isinstance(action, Take) and action.fence and action.fence not in fences:
                        fences[action.fence] = asyncio.create_task(self._fence(action.fence))
                    writes.append(self._write(action, fences))
        for result in await asyncio.gather(*writes, return_exceptions=True):
            if isinstance(result, TABLE_ERRORS):
                self._counters["write_failures"] += 1
                log.warning("lease.write_failed", worker=self._me.worker_id, error=str(result))
            elif isinstance(result, BaseException):
                raise result

    async def _fence(self, fence: Fence) -> FenceOutcome:
        try:
            outcome = await self._table.fence_worker(
                fence.worker_id, fence.counter, self._me.worker_id
            )
        except TABLE_ERRORS as error:
            log.warning("lease.fence_failed", dead=fence.worker_id, error=str(error))
            return FenceOutcome.ALIVE  # not known to be fenced: take nothing this round
        if outcome is FenceOutcome.FENCED:
            self._counters["fences"] += 1
            log.info("lease.worker_declared_dead", worker=self._me.worker_id,
                     dead=fence.worker_id)
        return outcome

    async def _write(self, action: Action, fences: dict[Fence, asyncio.Task[FenceOutcome]]) -> None:
        async with self._write_slots:
            if not self._me.is_valid() or self._supervisor.closing:
                return
            if self.taking_paused_s() > 0 and isinstance(
                action, Take | ForceSteal | RequestHandoff
            ):
                return  # cooling down: a lease handed to us (Claim) still runs here
            me, held = self._me.worker_id, self._supervisor.held
            match action:
                case Take(key, owner, counter, fence):
                    if key in held:
                        return
                    if fence is not None and not (await fences[fence]).dead:
                        return
                    self._acquired("take", await self._table.take(key, owner, counter, me))
                case Claim(key, counter):
                    if key not in held:
                        self._acquired("claim", await self._table.claim(key, me, counter))
                case ForceSteal(key, owner, counter):
                    if key not in held:
                        lease = await self._table.force_steal(key, owner, counter, me)
                        self.my_requests.pop(key, None)
                        self._acquired("force_steal", lease)
                case RequestHandoff(key, owner, counter):
                    if await self._table.request_handoff(key, owner, counter, me):
                        self.my_requests[key] = self._clock()
                        self._counters["handoff_requests"] += 1
                case DeclineHandoff(key, requester, token):
                    await self._table.decline_handoff(key, me, token, requester)
                case DeleteWorker(worker_id, counter):
                    await self._table.delete_worker(worker_id, counter)
                case _:
                    raise AssertionError(f"not a write action: {action!r}")

    def _acquired(self, how: str, lease: Lease | None) -> None:
        if lease is None:
            # Someone changed it first: read again now rather than a take interval later.
            self._counters[f"{how}_conflicts"] += 1
            self._wake.set()
            return
        self._counters[how] += 1
        if self._me.is_valid():  # else lapsed meanwhile: the next sync claims it
            self._supervisor.start(lease, how)

    # --- handoff ----------------------------------------------------------------------------

    def _begin_handoff(self, key: str, to: str, token: int) -> None:
        held = self._supervisor.held.get(key)
        if held is None or held.handing_off or held.token != token:
            return
        held.handoff_task = self._supervisor.spawn(self._hand_off(held, to), f"handoff:{key}")

    async def _hand_off(self, held: HeldLease, to: str) -> None:
        """Planned move: stop the processor after its in-flight work and checkpoint, then give
        the lease to the requester in one conditional write. No record is read twice."""
        held.handle.request_stop(StopReason.HANDOFF)
        await self._supervisor.stop_processor(held, self._settings.handoff_timeout_s)
        if held.handle.finished:
            return
        while self._me.is_valid() and self._supervisor.held.get(held.key) is held:
            try:
                moved = await self._table.transfer(
                    held.key, self._me.worker_id, held.token, to, requested_by=to
                )
            except TABLE_ERRORS as error:
                log.warning("lease.handoff_write_failed", shard=held.key, error=str(error))
                await asyncio.sleep(self._settings.heartbeat_interval_s)
                continue
            if self._supervisor.held.get(held.key) is held:
                self._supervisor.forget(held.key)
            held.handle.request_stop(StopReason.LOST)  # the handle must not write again
            if moved:
                self._counters["handoffs"] += 1
                log.info("lease.handed_off", worker=self._me.worker_id, shard=held.key, to=to)
            return

    # --- giving leases up -------------------------------------------------------------------

    async def relinquish(
        self, handle: LeaseHandle, cool_down_s: float, counts: Mapping[str, int]
    ) -> str | None:
        """See Coordinator.relinquish; `counts` is the live workers' lease counts."""
        self._taking_paused_until = max(self._taking_paused_until, self._clock() + cool_down_s)
        held = self._supervisor.held.get(handle.lease_key)
        handle.request_stop(StopReason.LOST)  # no more writes through this handle
        if held is None or held.handle is not handle:
            return None
        self._supervisor.forget(held.key)
        to = plan_release([held.key], counts, self._me.worker_id)[held.key]
        while self._me.is_valid():
            try:
                released = await self._table.transfer(held.key, self._me.worker_id, held.token, to)
            except TABLE_ERRORS as error:
                log.warning("lease.release_failed", shard=held.key, error=str(error))
                await asyncio.sleep(min(0.5, self._settings.heartbeat_interval_s))
                continue
            # A scan that started before this write may still show the lease as ours: the
            # sync must not claim it back from that stale view (see `touched`).
            self._supervisor.touched[held.key] = self._clock()
            if released:
                self._counters["relinquished"] += 1
                log.info("lease.relinquished", worker=self._me.worker_id, shard=held.key, to=to,
                         cool_down_s=cool_down_s)
            self._wake.set()  # the others see it at their next read; we read again now
            return to if released else None
        return None

    async def release_all(self, deadline: float, counts: Mapping[str, int]) -> None:
        """Shutdown: every lease still held goes to the least loaded live worker (or nobody)."""
        owned = {k: h for k, h in self._supervisor.held.items() if not h.handle.finished}
        assignment = plan_release(sorted(owned), counts, self._me.worker_id)

        async def release(key: str, to: str | None) -> None:
            held = owned[key]
            held.handle.request_stop(StopReason.LOST)  # no more writes through this handle
            while self._clock() < deadline + self._settings.fencing_margin_s:
                try:
                    await self._table.transfer(key, self._me.worker_id, held.token, to)
                    return
                except TABLE_ERRORS as error:
                    log.warning("lease.release_failed", shard=key, error=str(error))
                    await asyncio.sleep(0.2)

        await asyncio.gather(*(release(key, to) for key, to in assignment.items()))
        self._counters["released"] += len(assignment)
        self._supervisor.held.clear()
