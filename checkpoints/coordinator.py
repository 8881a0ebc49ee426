"""The lease coordinator: one per worker. Heartbeats, takes, balances and hands off leases, and
runs one shard processor task per lease it holds.

Background tasks (all started by `start()`, all cancelled by `aclose()` / `abort()`):

- heartbeat: one conditional write of this worker's heartbeat item every heartbeat interval.
  Leases are never renewed one by one, so lease-table writes grow with workers, not shards.
- watchdog: when the last successful heartbeat *started* more than `local_expiry_s` ago, every
  lease is dropped (processors told LOST and cancelled) before any observer may take them.
- sync: every take interval (and exactly when some worker's failover deadline falls due) it
  scans the table, updates liveness, runs the pure planner and executes its actions.
- discovery: at start, when a shard ends, and periodically on the leader: ListShards, create
  missing leases (parents first), record children, delete finished leases past retention.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from checkpoints.discovery import (
    ShardLister,
    children_to_record,
    plan_cleanup,
    plan_new_leases,
)
from checkpoints.errors import LeaseLost, LeaseTableMissing, LeaseTableUnavailable
from checkpoints.handle import LeaseHandle, StopReason
from checkpoints.identity import resolve_worker_id
from checkpoints.liveness import LivenessTracker
from checkpoints.model import Lease, TableSnapshot
from checkpoints.planner import (
    Action,
    Claim,
    DeclineHandoff,
    DeleteWorker,
    Drop,
    Fence,
    ForceSteal,
    HandOff,
    PlanInput,
    RequestHandoff,
    Take,
    balance,
    leader,
    plan,
    plan_release,
)
from checkpoints.settings import LeaseSettings
from checkpoints.table import ClientFactory, FenceOutcome, LeaseTable, TableStats

log = structlog.get_logger(__name__)

# A shard processor: reads one shard through its handle until it is asked to stop or the shard
# ends (see LeaseHandle). Returning without either means "restart me" (after a backoff).
ShardProcessor = Callable[[LeaseHandle], Awaitable[None]]

# Errors a lease-table call may end with after its retries; loops count them and carry on.
_TABLE_ERRORS = (LeaseTableUnavailable, ClientError, BotoCoreError)
_MAX_CONCURRENT_WRITES = 16
_PROCESSOR_RESTART_MAX_S = 30.0


@dataclass
class _Held:
    """A lease running on this worker under fencing token `token`."""

    key: str
    token: int
    handle: LeaseHandle
    task: asyncio.Task[None] | None = None
    handoff_task: asyncio.Task[None] | None = None

    @property
    def handing_off(self) -> bool:
        return self.handoff_task is not None


class Coordinator:
    """Shares a stream's shards with the other workers of one application.

    Constructing does no I/O. Use `async with Coordinator(...)`, or `start()` then
    `aclose()` (graceful: processors stop and checkpoint, leases go to other live workers).
    `abort()` stops without releasing anything (what a crash looks like to the others).
    """

    def __init__(
        self,
        settings: LeaseSettings,
        table: LeaseTable,
        shard_lister: ShardLister,
        processor: ShardProcessor,
        *,
        worker_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._table = table
        self._lister = shard_lister
        self._processor = processor
        self._worker_id = worker_id or settings.worker_id
        self._clock = clock
        self._rng = rng or random.Random()
        self._tracker = LivenessTracker(settings.failover_s)
        self._held: dict[str, _Held] = {}
        self._my_requests: dict[str, float] = {}
        self._free_since: dict[str, float] = {}
        # Lease key -> when it last entered or left `_held` (coordinator clock).
        self._touched: dict[str, float] = {}
        self._snapshot = TableSnapshot()
        self._heartbeat_counter = 0
        self._registered = False
        self._valid_until = float("-inf")
        # Until then this worker takes no lease by itself (it let one go: see relinquish).
        self._taking_paused_until = float("-inf")
        self._closing = False
        self._closed = False
        self._started = False
        self._loops: list[asyncio.Task[None]] = []
        self._sync_loops: list[asyncio.Task[None]] = []
        self._shard_tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._discover_now = asyncio.Event()
        self._write_slots = asyncio.Semaphore(_MAX_CONCURRENT_WRITES)
        self.counters: Counter[str] = Counter()

    # --- public view ------------------------------------------------------------------------

    @property
    def worker_id(self) -> str:
        if self._worker_id is None:
            raise RuntimeError("worker id is resolved by start()")
        return self._worker_id

    @property
    def table(self) -> LeaseTable:
        return self._table

    @property
    def table_stats(self) -> TableStats:
        return self._table.stats

    def held_shards(self) -> frozenset[str]:
        """Shards running here now (including ones being handed off)."""
        return frozenset(self._held)

    def is_valid(self) -> bool:
        """True while this worker's heartbeat is recent enough to keep working."""
        return self._clock() < self._valid_until

    def taking_paused_s(self) -> float:
        """Seconds left of a cool-down after `relinquish` (0 when leases are taken as usual)."""
        return max(0.0, self._taking_paused_until - self._clock())

    # --- life cycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Coordinator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("a Coordinator starts once")
        self._started = True
        if self.settings.create_table:
            await self._table.create_if_missing()
        elif not await self._table.exists():
            raise LeaseTableMissing(f"lease table {self._table.name} does not exist")
        if self._worker_id is None:
            self._worker_id = await resolve_worker_id()
        await self._register()
        log.info("lease.coordinator_started", worker=self._worker_id, table=self._table.name)
        self._loops = [
            self._supervised("heartbeat", self._heartbeat_loop),
            self._supervised("watchdog", self._watchdog_loop),
        ]
        self._sync_loops = [
            self._supervised("sync", self._sync_loop),
            self._supervised("discovery", self._discovery_loop),
        ]

    def _supervised(
        self, name: str, loop: Callable[[], Awaitable[None]]
    ) -> asyncio.Task[None]:
        """Runs a background loop forever: a bug that escapes one round is logged and counted,
        and the loop restarts, so nothing silently stops heartbeating or balancing."""

        async def supervise() -> None:
            while True:
                try:
                    await loop()
                    return
                except Exception:
                    self.counters[f"{name}_loop_crashes"] += 1
                    log.exception("lease.loop_crashed", loop=name)
                    await asyncio.sleep(min(1.0, self.settings.heartbeat_interval_s))

        return asyncio.create_task(supervise(), name=f"leases:{name}")

    async def aclose(self) -> None:
        """Graceful stop (SIGTERM): no new leases; processors are asked to stop (SHUTDOWN),
        get `shutdown_timeout_s` to checkpoint, then every lease is transferred to the least
        loaded live worker (or released) and our heartbeat item deleted."""
        if self._closed or not self._started:
            self._closed = True
            return
        self._closing = True
        await _cancel_all(self._sync_loops)
        deadline = self._clock() + self.settings.shutdown_timeout_s
        for held in list(self._held.values()):
            held.handle.request_stop(StopReason.SHUTDOWN)
        pending = [h.handoff_task for h in self._held.values() if h.handoff_task is not None]
        pending += [h.task for h in self._held.values() if h.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=max(deadline - self._clock(), 0.1))
        await _cancel_all(list(self._shard_tasks))
        if self.is_valid():
            await self._release_all(deadline)
        else:
            self._held.clear()
        with suppress(*_TABLE_ERRORS):
            await self._table.delete_worker(self.worker_id)
        await _cancel_all(self._loops)
        self._closed = True
        log.info("lease.coordinator_stopped", worker=self._worker_id)

    async def abort(self) -> None:
        """Stops every task without writing anything: the table keeps showing our leases and
        heartbeat, exactly as after a crash (tests use it to simulate kill -9)."""
        self._closing = True
        self._closed = True
        await _cancel_all(self._sync_loops + self._loops + list(self._shard_tasks))
        self._held.clear()

    # --- heartbeat and self-fencing ---------------------------------------------------------

    async def _register(self) -> None:
        started = self._clock()
        self._heartbeat_counter = await self._table.register_worker(self.worker_id, len(self._held))
        self._registered = True
        self._valid_until = started + self.settings.local_expiry_s

    async def _heartbeat_loop(self) -> None:
        interval = self.settings.heartbeat_interval_s
        while True:
            await asyncio.sleep(interval * self._rng.uniform(0.95, 1.05))
            try:
                await self._heartbeat_once()
            except _TABLE_ERRORS as error:
                self.counters["heartbeat_failures"] += 1
                log.warning("lease.heartbeat_failed", worker=self._worker_id, error=str(error))

    async def _heartbeat_once(self) -> None:
        # Validity runs from the *first* attempt's start: the write that succeeded landed no
        # earlier, so no observer's failover window for it can start before this moment.
        started = self._clock()
        deadline = started + self.settings.heartbeat_interval_s
        if not self._registered:
            self._heartbeat_counter = await self._table.register_worker(
                self.worker_id, len(self._held), deadline=deadline
            )
            self._registered = True
            self._valid_until = started + self.settings.local_expiry_s
            log.info("lease.heartbeat_reregistered", worker=self._worker_id)
            return
        counter = await self._table.heartbeat(
            self.worker_id, self._heartbeat_counter, len(self._held), deadline=deadline
        )
        if counter is None:
            self.counters["fenced_by_others"] += 1
            self._registered = False
            self._valid_until = float("-inf")
            self._lapse("another worker declared this one dead")
            return
        self._heartbeat_counter = counter
        self._valid_until = max(self._valid_until, started + self.settings.local_expiry_s)

    async def _watchdog_loop(self) -> None:
        while True:
            remaining = self._valid_until - self._clock()
            if remaining > 0:
                await asyncio.sleep(remaining)
                continue
            if self._held:
                self.counters["local_expiries"] += 1
                self._lapse("heartbeat not confirmed within the local expiry")
            await asyncio.sleep(self.settings.heartbeat_interval_s / 4)

    def _lapse(self, reason: str) -> None:
        """Drops every lease at once: we may no longer be the owner anywhere."""
        if self._held:
            log.warning("lease.dropping_all", worker=self._worker_id, reason=reason,
                        leases=len(self._held))
        for key in list(self._held):
            self._drop(key, reason)
        self._my_requests.clear()

    # --- sync: read, plan, act --------------------------------------------------------------

    async def _sync_loop(self) -> None:
        # Let workers starting together see each other's heartbeats before anyone takes.
        await asyncio.sleep(self.settings.heartbeat_interval_s)
        while True:
            try:
                await self._sync_once()
            except LeaseTableMissing as error:
                self.counters["sync_failures"] += 1
                log.error("lease.table_missing", error=str(error))
            except _TABLE_ERRORS as error:
                self.counters["sync_failures"] += 1
                log.warning("lease.sync_failed", worker=self._worker_id, error=str(error))
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_sync_delay())
            self._wake.clear()

    def _next_sync_delay(self) -> float:
        delay = self.settings.take_interval_s * self._rng.uniform(0.9, 1.1)
        now = self._clock()
        owners = Counter(lease.owner for lease in self._snapshot.leases if lease.owner)
        deadline = self._tracker.next_deadline(now, {k: v for k, v in owners.items() if k})
        if deadline is not None:
            # Read again right when a lease owner's failover time is up: takeover does not
            # wait for the next regular tick (a few ms later so the deadline has passed).
            delay = min(delay, deadline - now + 0.005)
        return max(delay, 0.005)

    async def _sync_once(self) -> None:
        scan_started = self._clock()
        snapshot = await self._table.scan()
        now = self._clock()
        self._snapshot = snapshot
        self._tracker.observe(snapshot, now)
        if self._closing or not self.is_valid():
            return
        for key in list(self._my_requests):
            lease = snapshot.lease(key)
            if lease is None or lease.handoff_to != self.worker_id:
                del self._my_requests[key]
        held = {
            key: h.token
            for key, h in self._held.items()
            if not self._finished_here(snapshot, h)
        }
        plan_input = PlanInput(
            me=self.worker_id,
            leases=snapshot.leases,
            workers=self._tracker.workers(now),
            expired_leases=self._tracker.expired_leases(now),
            held=held,
            handing_off=frozenset(k for k, h in self._held.items() if h.handing_off),
            my_requests=dict(self._my_requests),
            free_since=self._free_since,
            free_grace_s=2 * self.settings.take_interval_s,
            now=now,
            max_steals=self.settings.max_steals_per_interval,
            handoff_timeout_s=self.settings.handoff_timeout_s,
        )
        self._touched = {k: at for k, at in self._touched.items() if now - at < 60.0}
        free = {lease.key for lease in balance(plan_input).free}
        self._free_since = {key: self._free_since.get(key, now) for key in free}
        # A lease whose local state changed while the scan ran (handed off, ended, lost) is
        # seen stale in this snapshot: leave it to the next round instead of e.g. claiming
        # back a lease we just handed away.
        actions = [
            action
            for action in plan(replace(plan_input, free_since=self._free_since))
            if self._touched.get(_key_of(action), float("-inf")) < scan_started
        ]
        if actions:
            log.debug("lease.plan", worker=self._worker_id, actions=[repr(a) for a in actions])
        await self._execute(actions)

    @staticmethod
    def _finished_here(snapshot: TableSnapshot, held: _Held) -> bool:
        """Our own SHARD_END write landed but the processor has not returned yet."""
        lease = snapshot.lease(held.key)
        return lease is not None and lease.finished and lease.counter == held.token + 1

    async def _execute(self, actions: Iterable[Action]) -> None:
        fences: dict[Fence, asyncio.Task[FenceOutcome]] = {}
        writes: list[Awaitable[None]] = []
        for action in actions:
            match action:
                case Drop(key, reason):
                    self._drop(key, reason)
                case HandOff(key, to, token):
                    self._begin_handoff(key, to, token)
                case Take(fence=Fence() as fence) if fence not in fences:
                    fences[fence] = asyncio.create_task(self._fence(fence))
            match action:
                case Take() | Claim() | ForceSteal() | RequestHandoff() | DeclineHandoff() | (
                    DeleteWorker()
                ):
                    writes.append(self._write_action(action, fences))
        if writes:
            results = await asyncio.gather(*writes, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, _TABLE_ERRORS):
                    raise result
                if isinstance(result, BaseException):
                    self.counters["write_failures"] += 1
                    log.warning("lease.write_failed", worker=self._worker_id, error=str(result))

    async def _fence(self, fence: Fence) -> FenceOutcome:
        try:
            outcome = await self._table.fence_worker(
                fence.worker_id, fence.counter, self.worker_id
            )
        except _TABLE_ERRORS as error:
            log.warning("lease.fence_failed", dead=fence.worker_id, error=str(error))
            return FenceOutcome.ALIVE  # not known to be fenced: take nothing this round
        if outcome is FenceOutcome.FENCED:
            self.counters["fences"] += 1
            log.info("lease.worker_declared_dead", worker=self._worker_id, dead=fence.worker_id)
        return outcome

    async def _write_action(
        self, action: Action, fences: dict[Fence, asyncio.Task[FenceOutcome]]
    ) -> None:
        async with self._write_slots:
            if not self.is_valid() or self._closing:
                return
            if self.taking_paused_s() > 0 and isinstance(
                action, Take | ForceSteal | RequestHandoff
            ):
                return  # cooling down: a lease handed to us (Claim) still runs here
            me = self.worker_id
            match action:
                case Take(key, owner, counter, fence):
                    if key in self._held:
                        return
                    if fence is not None and not (await fences[fence]).dead:
                        return
                    self._acquired("take", await self._table.take(key, owner, counter, me))
                case Claim(key, counter):
                    if key not in self._held:
                        self._acquired("claim", await self._table.claim(key, me, counter))
                case ForceSteal(key, owner, counter):
                    if key not in self._held:
                        lease = await self._table.force_steal(key, owner, counter, me)
                        self._my_requests.pop(key, None)
                        self._acquired("force_steal", lease)
                case RequestHandoff(key, owner, counter):
                    if await self._table.request_handoff(key, owner, counter, me):
                        self._my_requests[key] = self._clock()
                        self.counters["handoff_requests"] += 1
                case DeclineHandoff(key, requester, token):
                    await self._table.decline_handoff(key, me, token, requester)
                case DeleteWorker(worker_id, counter):
                    await self._table.delete_worker(worker_id, counter)
                case _:
                    raise AssertionError(f"not a write action: {action!r}")

    # --- holding leases ---------------------------------------------------------------------

    def _acquired(self, how: str, lease: Lease | None) -> None:
        if lease is None:
            # Someone changed it first: read again now rather than a take interval later.
            self.counters[f"{how}_conflicts"] += 1
            self._wake.set()
            return
        self.counters[how] += 1
        if not self.is_valid():
            return  # lapsed meanwhile: the table shows it ours; the next sync claims it
        handle = self._new_handle(lease)
        held = _Held(lease.key, lease.counter, handle)
        self._held[lease.key] = held
        self._touched[lease.key] = self._clock()
        if self._closing:
            return  # taken as we stop: not started, but released with the others
        held.task = self._spawn(self._run_processor(held), f"shard:{lease.key}")
        log.info("lease.acquired", worker=self._worker_id, shard=lease.shard_id, how=how,
                 checkpoint=str(lease.checkpoint), token=lease.counter)

    def _new_handle(self, lease: Lease) -> LeaseHandle:
        return LeaseHandle(
            lease,
            self.worker_id,
            lease.counter,
            self._table,
            is_valid=self.is_valid,
            on_shard_end=self._on_shard_end,
            retry_delay_s=min(0.5, self.settings.heartbeat_interval_s),
        )

    def _spawn(self, coroutine: Awaitable[None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._shard_tasks.add(task)
        task.add_done_callback(self._shard_tasks.discard)
        return task

    def _forget(self, key: str) -> _Held | None:
        self._touched[key] = self._clock()
        return self._held.pop(key, None)

    def _drop(self, key: str, reason: str) -> None:
        held = self._forget(key)
        if held is None:
            return
        self.counters["leases_lost"] += 1
        held.handle.request_stop(StopReason.LOST)
        for task in (held.task, held.handoff_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        log.info("lease.lost", worker=self._worker_id, shard=held.handle.shard_id, reason=reason)

    def _on_shard_end(self, handle: LeaseHandle) -> None:
        held = self._held.get(handle.lease_key)
        if held is not None and held.handle is handle:
            self._forget(handle.lease_key)
        self.counters["shards_ended"] += 1
        log.info("lease.shard_ended", worker=self._worker_id, shard=handle.shard_id)
        self._discover_now.set()  # create the children's leases now, not at the next period
        self._wake.set()

    async def _run_processor(self, held: _Held) -> None:
        """Runs the processor; restarts it (fresh handle, last checkpoint) with a backoff if
        it returns or fails without having been asked to stop and without reaching SHARD_END."""
        backoff = 1.0
        while True:
            handle = held.handle
            try:
                await self._processor(handle)
            except LeaseLost:
                pass
            except Exception:
                self.counters["processor_failures"] += 1
                log.exception("lease.processor_failed", shard=handle.shard_id)
            if handle.lost.is_set():
                if self._held.get(held.key) is held:
                    self._drop(held.key, "the lease table refused a checkpoint")
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
                owner=self.worker_id,
                counter=held.token,
                checkpoint=handle.checkpointed,
                pending_checkpoint=handle.pending_checkpoint,
                parent_shard_ids=handle.parent_shard_ids,
            )
            held.handle = self._new_handle(resumed)

    # --- handoff ----------------------------------------------------------------------------

    def _begin_handoff(self, key: str, to: str, token: int) -> None:
        held = self._held.get(key)
        if held is None or held.handing_off or held.token != token:
            return
        held.handoff_task = self._spawn(self._hand_off(held, to), f"handoff:{key}")

    async def _hand_off(self, held: _Held, to: str) -> None:
        """Planned move: stop the processor after its in-flight work and checkpoint, then give
        the lease to the requester in one conditional write. No record is read twice."""
        held.handle.request_stop(StopReason.HANDOFF)
        await self._await_processor(held, self.settings.handoff_timeout_s)
        if held.handle.finished or self._held.get(held.key) is not held:
            return
        while self.is_valid() and self._held.get(held.key) is held:
            try:
                moved = await self._table.transfer(
                    held.key, self.worker_id, held.token, to, requested_by=to
                )
            except _TABLE_ERRORS as error:
                log.warning("lease.handoff_write_failed", shard=held.key, error=str(error))
                await asyncio.sleep(self.settings.heartbeat_interval_s)
                continue
            if self._held.get(held.key) is held:
                self._forget(held.key)
            held.handle.request_stop(StopReason.LOST)  # the handle must not write again
            if moved:
                self.counters["handoffs"] += 1
                log.info("lease.handed_off", worker=self._worker_id, shard=held.key, to=to)
            return

    async def _await_processor(self, held: _Held, timeout_s: float) -> None:
        task = held.task
        if task is None or task.done():
            return
        done, _ = await asyncio.wait([task], timeout=timeout_s)
        if not done:
            self.counters["processor_stop_timeouts"] += 1
            log.warning("lease.processor_cancelled", shard=held.key)
            await _cancel_all([task])

    # --- giving one lease up ----------------------------------------------------------------

    async def relinquish(self, handle: LeaseHandle, cool_down_s: float) -> str | None:
        """Gives up one lease without a checkpoint (its processor cannot make progress here,
        e.g. a destination is missing): the handle stops writing, the lease goes to the least
        loaded other live worker (or to nobody when we are alone), and this worker takes no
        lease by itself for `cool_down_s`. Returns who got it (None: nobody or not released,
        e.g. the lease was lost meanwhile). May be awaited from the processor's own task."""
        self._taking_paused_until = max(self._taking_paused_until, self._clock() + cool_down_s)
        held = self._held.get(handle.lease_key)
        handle.request_stop(StopReason.LOST)  # no more writes through this handle
        if held is None or held.handle is not handle:
            return None
        self._forget(held.key)
        now = self._clock()
        spread = balance(
            PlanInput(me=self.worker_id, leases=self._snapshot.leases,
                      workers=self._tracker.workers(now))
        )
        to = plan_release([held.key], spread.counts, self.worker_id)[held.key]
        while self.is_valid():
            try:
                released = await self._table.transfer(held.key, self.worker_id, held.token, to)
            except _TABLE_ERRORS as error:
                log.warning("lease.release_failed", shard=held.key, error=str(error))
                await asyncio.sleep(min(0.5, self.settings.heartbeat_interval_s))
                continue
            # A scan that started before this write may still show the lease as ours: the
            # sync must not claim it back from that stale view (see `_touched`).
            self._touched[held.key] = self._clock()
            if released:
                self.counters["relinquished"] += 1
                log.info("lease.relinquished", worker=self._worker_id, shard=held.key, to=to,
                         cool_down_s=cool_down_s)
            self._wake.set()  # the others see it at their next read; we read again now
            return to if released else None
        return None

    # --- graceful release -------------------------------------------------------------------

    async def _release_all(self, deadline: float) -> None:
        now = self._clock()
        spread = balance(
            PlanInput(me=self.worker_id, leases=self._snapshot.leases,
                      workers=self._tracker.workers(now))
        )
        owned = {k: h for k, h in self._held.items() if not h.handle.finished}
        assignment = plan_release(sorted(owned), spread.counts, self.worker_id)

        async def release(key: str, to: str | None) -> None:
            held = owned[key]
            held.handle.request_stop(StopReason.LOST)  # no more writes through this handle
            while self._clock() < deadline + self.settings.fencing_margin_s:
                try:
                    await self._table.transfer(key, self.worker_id, held.token, to)
                    return
                except _TABLE_ERRORS as error:
                    log.warning("lease.release_failed", shard=key, error=str(error))
                    await asyncio.sleep(0.2)

        await asyncio.gather(*(release(key, to) for key, to in assignment.items()))
        self.counters["released"] += len(assignment)
        self._held.clear()

    # --- discovery --------------------------------------------------------------------------

    async def _discovery_loop(self) -> None:
        forced = True  # every worker lists once at start: the first one creates the leases
        while True:
            if not forced:
                with suppress(TimeoutError):
                    interval = self.settings.shard_sync_interval_s
                    await asyncio.wait_for(
                        self._discover_now.wait(), interval * self._rng.uniform(0.9, 1.1)
                    )
                forced = self._discover_now.is_set()
                self._discover_now.clear()
            is_leader = leader(self._tracker.workers(self._clock()), self.worker_id) == (
                self.worker_id
            )
            if forced or is_leader:
                try:
                    await self._discover(cleanup=is_leader)
                except _TABLE_ERRORS as error:
                    self.counters["discovery_failures"] += 1
                    log.warning("lease.discovery_failed", error=str(error))
            forced = False

    async def _discover(self, cleanup: bool) -> None:
        shards = await self._lister.list_shards()
        snapshot = await self._table.scan()
        created = plan_new_leases(shards, snapshot.leases, self.settings.initial_position)
        made = deleted = 0
        for lease in created:  # parents first: a crash leaves a prefix the next round completes
            if await self._table.create_lease(lease):
                made += 1
            else:
                # Another worker is creating the same list in the same order: leave the rest
                # to it (a failed conditional put is billed too); the leader's next round
                # fills any gap it leaves.
                break
        for parent, children in children_to_record(shards, snapshot.leases).items():
            await self._table.add_children(parent, children)
        # An empty listing means a wrong stream or a broken call, never "all past retention".
        if cleanup and shards:
            for key in plan_cleanup(shards, snapshot.leases):
                if await self._table.delete_finished_lease(key):
                    deleted += 1
        self.counters["leases_created"] += made
        self.counters["leases_deleted"] += deleted
        if made or deleted:
            log.info("lease.discovery", worker=self._worker_id, shards=len(shards),
                     leases_created=made, leases_deleted=deleted)
        if created:
            self._wake.set()


def _key_of(action: Action) -> str:
    return action.worker_id if isinstance(action, DeleteWorker) else action.lease_key


async def _cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
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


@asynccontextmanager
async def open_coordinator(
    settings: LeaseSettings,
    clients: ClientFactory,
    processor: ShardProcessor,
    lister: ShardLister,
    *,
    worker_id: str | None = None,
) -> AsyncIterator[Coordinator]:
    """A running coordinator wired to the lease table and the stream's `lister`; closed
    gracefully on exit. The usual entry point for the worker runtime."""
    async with LeaseTable.open(clients, settings.lease_table, settings.retry) as table:
        coordinator = Coordinator(
            settings, table, lister, processor, worker_id=worker_id
        )
        async with coordinator:
            yield coordinator


