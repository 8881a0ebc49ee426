"""The lease coordinator: one per worker. Composes the heartbeat (heartbeat.py), the processor
supervisor (supervisor.py) and the action executor (actions.py), and runs the two loops that
read the table: sync (scan, liveness, plan, act: every take interval and when a failover
deadline falls due) and discovery (list shards, create leases parents first, record children,
clean up past retention: at start, when a shard ends, and periodically on the leader).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import replace

import structlog

from checkpoints.actions import ActionExecutor
from checkpoints.context import TABLE_ERRORS, LeaseContext
from checkpoints.discovery import ShardLister, children_to_record, plan_cleanup, plan_new_leases
from checkpoints.errors import LeaseTableMissing
from checkpoints.handle import LeaseHandle
from checkpoints.heartbeat import Heartbeat
from checkpoints.liveness import LivenessTracker
from checkpoints.model import TableSnapshot
from checkpoints.planner import DeleteWorker, PlanInput, balance, leader, plan
from checkpoints.settings import LeaseSettings
from checkpoints.supervisor import ProcessorSupervisor, ShardProcessor, cancel_all
from checkpoints.table import LeaseTable, TableStats

log = structlog.get_logger(__name__)


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
        self.counters: Counter[str] = Counter()
        self._table = table
        self._lister = shard_lister
        self._clock = clock
        self._rng = rng or random.Random()
        context = LeaseContext(settings, table, self.counters, clock)
        self._me = Heartbeat(
            context, worker_id or settings.worker_id, rng=self._rng,
            held_count=lambda: len(self._supervisor.held), on_lapse=self._lapse,
        )
        self._supervisor = ProcessorSupervisor(
            context, processor, self._me, on_shard_end=self._shard_ended
        )
        self._wake = asyncio.Event()
        self._discover_now = asyncio.Event()
        self._actions = ActionExecutor(context, self._me, self._supervisor, wake=self._wake)
        self._tracker = LivenessTracker(settings.failover_s)
        self._snapshot = TableSnapshot()
        self._free_since: dict[str, float] = {}
        self._closed = False
        self._started = False
        self._loops: list[asyncio.Task[None]] = []
        self._sync_loops: list[asyncio.Task[None]] = []

    # --- public view ------------------------------------------------------------------------

    @property
    def worker_id(self) -> str:
        return self._me.worker_id

    @property
    def table(self) -> LeaseTable:
        return self._table

    @property
    def table_stats(self) -> TableStats:
        return self._table.stats

    def held_shards(self) -> frozenset[str]:
        """Shards running here now (including ones being handed off)."""
        return frozenset(self._supervisor.held)

    def is_valid(self) -> bool:
        """True while this worker's heartbeat is recent enough to keep working."""
        return self._me.is_valid()

    def taking_paused_s(self) -> float:
        """Seconds left of a cool-down after `relinquish` (0 when leases are taken as usual)."""
        return self._actions.taking_paused_s()

    async def relinquish(self, handle: LeaseHandle, cool_down_s: float) -> str | None:
        """Gives up one lease without a checkpoint (its processor cannot make progress here,
        e.g. a destination is missing): the handle stops writing, the lease goes to the least
        loaded other live worker (or to nobody when we are alone), and this worker takes no
        lease by itself for `cool_down_s`. Returns who got it (None: nobody or not released,
        e.g. the lease was lost meanwhile). May be awaited from the processor's own task."""
        return await self._actions.relinquish(handle, cool_down_s, self._live_counts())

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
        await self._me.register()
        log.info("lease.coordinator_started", worker=self.worker_id, table=self._table.name)
        self._loops = [
            self._supervised("heartbeat", self._me.beat),
            self._supervised("watchdog", self._me.watch),
        ]
        self._sync_loops = [
            self._supervised("sync", self._sync_loop),
            self._supervised("discovery", self._discovery_loop),
        ]

    def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
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
        self._supervisor.closing = True
        await cancel_all(self._sync_loops)
        deadline = self._clock() + self.settings.shutdown_timeout_s
        await self._supervisor.drain(deadline)
        if self.is_valid():
            await self._actions.release_all(deadline, self._live_counts())
        else:
            self._supervisor.held.clear()
        with suppress(*TABLE_ERRORS):
            await self._table.delete_worker(self.worker_id)
        await cancel_all(self._loops)
        self._closed = True
        log.info("lease.coordinator_stopped", worker=self.worker_id)

    async def abort(self) -> None:
        """Stops every task without writing anything: the table keeps showing our leases and
        heartbeat, exactly as after a crash (tests use it to simulate kill -9)."""
        self._closed = True
        await self._supervisor.abort(self._sync_loops + self._loops)

    def _lapse(self, reason: str) -> None:
        """Drops every lease at once: we may no longer be the owner anywhere."""
        self._supervisor.drop_all(reason)
        self._actions.my_requests.clear()

    def _shard_ended(self) -> None:
        self._discover_now.set()  # create the children's leases now, not at the next period
        self._wake.set()

    def _live_counts(self) -> dict[str, int]:
        """Leases per live worker, as the last scan showed them."""
        workers = self._tracker.workers(self._clock())
        return balance(PlanInput(self.worker_id, self._snapshot.leases, workers)).counts

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
            except TABLE_ERRORS as error:
                self.counters["sync_failures"] += 1
                log.warning("lease.sync_failed", worker=self.worker_id, error=str(error))
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_sync_delay())
            self._wake.clear()

    def _next_sync_delay(self) -> float:
        delay = self.settings.take_interval_s * self._rng.uniform(0.9, 1.1)
        now = self._clock()
        owners = Counter(lease.owner for lease in self._snapshot.leases if lease.owner)
        deadline = self._tracker.next_deadline(now, owners)
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
        if self._supervisor.closing or not self.is_valid():
            return
        my_requests = self._actions.my_requests
        for key in list(my_requests):
            lease = snapshot.lease(key)
            if lease is None or lease.handoff_to != self.worker_id:
                del my_requests[key]
        running = self._supervisor.held
        plan_input = PlanInput(
            me=self.worker_id,
            leases=snapshot.leases,
            workers=self._tracker.workers(now),
            expired_leases=self._tracker.expired_leases(now),
            held={k: h.token for k, h in running.items() if not h.finished_in(snapshot)},
            handing_off=frozenset(k for k, h in running.items() if h.handing_off),
            my_requests=dict(my_requests),
            free_grace_s=2 * self.settings.take_interval_s,
            now=now,
            max_steals=self.settings.max_steals_per_interval,
            handoff_timeout_s=self.settings.handoff_timeout_s,
        )
        touched = self._supervisor.touched = {
            k: at for k, at in self._supervisor.touched.items() if now - at < 60.0
        }
        free = {lease.key for lease in balance(plan_input).free}
        self._free_since = {key: self._free_since.get(key, now) for key in free}
        # A lease whose local state changed while the scan ran (handed off, ended, lost) is
        # seen stale in this snapshot: leave it to the next round instead of e.g. claiming
        # back a lease we just handed away.
        actions = [
            action
            for action in plan(replace(plan_input, free_since=self._free_since))
            if touched.get(
                action.worker_id if isinstance(action, DeleteWorker) else action.lease_key,
                float("-inf"),
            ) < scan_started
        ]
        if actions:
            log.debug("lease.plan", worker=self.worker_id, actions=[repr(a) for a in actions])
        await self._actions.execute(actions)

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
            workers = self._tracker.workers(self._clock())
            is_leader = leader(workers, self.worker_id) == self.worker_id
            if forced or is_leader:
                try:
                    await self._discover(cleanup=is_leader)
                except TABLE_ERRORS as error:
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
            log.info("lease.discovery", worker=self.worker_id, shards=len(shards),
                     leases_created=made, leases_deleted=deleted)
        if created:
            self._wake.set()
