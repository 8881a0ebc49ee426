"""Several Coordinators in one process, sharing a lease table on moto, over an in-memory
stream (so these tests can script shard splits and count deliveries exactly)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field

import pytest

from checkpoints import (
    Checkpoint,
    Coordinator,
    LeaseHandle,
    LeaseLost,
    LeaseSettings,
    LeaseTable,
    ShardInfo,
    ShardProcessor,
)
from checkpoints.errors import LeaseTableUnavailable
from consumer.aws import AwsEndpoints

pytestmark = pytest.mark.integration

# Short enough for fast tests, loose enough that a loaded CI machine (event-loop stalls of
# about a second) does not trip the local expiry: 2.0 - min(3, 2.0 / 3) = 1.33 s.
HEARTBEAT_S = 0.3
FAILOVER_S = 2.0
TAKE_S = 0.3


def fast_settings(app: str) -> LeaseSettings:
    return LeaseSettings(
        application_name=app,
        stream_name="memory",
        heartbeat_interval_s=HEARTBEAT_S,
        failover_s=FAILOVER_S,
        take_interval_s=TAKE_S,
        handoff_timeout_s=3.0,
        shutdown_timeout_s=2.0,
        shard_sync_interval_s=0.5,
        max_steals_per_interval=2,
    )


@dataclass
class MemoryStream:
    """Shards with records (sequence numbers increase across the whole stream) that can be
    closed and split while the test runs."""

    shards: dict[str, ShardInfo] = field(default_factory=dict)
    records: dict[str, list[str]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    _sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(10**20))

    def add(self, shard_id: str, parents: tuple[str, ...] = (), records: int = 0) -> None:
        self.shards[shard_id] = ShardInfo(shard_id, frozenset(parents))
        self.records[shard_id] = []
        for parent in parents:
            self.children.setdefault(parent, []).append(shard_id)
        self.append(shard_id, records)

    def append(self, shard_id: str, count: int) -> None:
        assert not self.shards[shard_id].closed
        self.records[shard_id] += [str(next(self._sequence)) for _ in range(count)]

    def close(self, shard_id: str) -> None:
        shard = self.shards[shard_id]
        self.shards[shard_id] = ShardInfo(shard_id, shard.parent_shard_ids, closed=True)

    def split(self, parent: str, into: tuple[str, str]) -> None:
        self.close(parent)
        for child in into:
            self.add(child, (parent,))

    async def list_shards(self) -> list[ShardInfo]:
        return list(self.shards.values())

    def all_sequence_numbers(self) -> set[str]:
        return {seq for records in self.records.values() for seq in records}


@dataclass(frozen=True)
class Delivery:
    worker: str
    shard: str
    seq: str
    at: float


@dataclass
class Recorder:
    """A toy processor per worker: reads batches of 5 after the checkpoint, records them,
    checkpoints, and stops only between batches."""

    stream: MemoryStream
    deliveries: list[Delivery] = field(default_factory=list)
    lost_at: dict[tuple[str, str], float] = field(default_factory=dict)
    started_at: dict[tuple[str, str], float] = field(default_factory=dict)

    def processor(self, worker: str) -> ShardProcessor:
        async def process(handle: LeaseHandle) -> None:
            self.started_at[(worker, handle.shard_id)] = time.monotonic()
            records = self.stream.records[handle.shard_id]
            start = handle.start_position
            position = (
                records.index(start.sequence_number) + 1
                if start.sequence_number is not None
                else 0
            )
            try:
                while not handle.stop_requested.is_set():
                    batch = records[position : position + 5]
                    if batch:
                        now = time.monotonic()
                        shard = handle.shard_id
                        self.deliveries += [Delivery(worker, shard, s, now) for s in batch]
                        position += len(batch)
                        await handle.checkpoint(batch[-1])
                    elif self.stream.shards[handle.shard_id].closed:
                        children = self.stream.children.get(handle.shard_id, [])
                        await handle.checkpoint_shard_end(children)
                        return
                    with suppress(TimeoutError):
                        await asyncio.wait_for(handle.stop_requested.wait(), 0.02)
            finally:
                if handle.lost.is_set():
                    self.lost_at[(worker, handle.shard_id)] = time.monotonic()

        return process

    def duplicates(self) -> dict[str, int]:
        counts = Counter(d.seq for d in self.deliveries)
        return {seq: n for seq, n in counts.items() if n > 1}

    def delivered(self) -> set[str]:
        return {d.seq for d in self.deliveries}


@asynccontextmanager
async def running(
    endpoints: AwsEndpoints,
    settings: LeaseSettings,
    stream: MemoryStream,
    recorder: Recorder,
    names: list[str],
) -> AsyncIterator[tuple[list[Coordinator], Callable[[str], asyncio.Future[Coordinator]]]]:
    """Coordinators named `names`, started; a function to start more; all aborted at exit."""
    async with AsyncExitStack() as stack:
        coordinators: list[Coordinator] = []

        async def start(name: str) -> Coordinator:
            opening = LeaseTable.open(endpoints, settings.lease_table)
            table = await stack.enter_async_context(opening)
            coordinator = Coordinator(
                settings, table, stream, recorder.processor(name), worker_id=name
            )
            await coordinator.start()
            stack.push_async_callback(coordinator.abort)
            coordinators.append(coordinator)
            return coordinator

        for name in names:
            await start(name)
        yield coordinators, lambda name: asyncio.ensure_future(start(name))


async def eventually(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def held(coordinators: list[Coordinator]) -> list[int]:
    return sorted(len(c.held_shards()) for c in coordinators)


async def test_three_coordinators_converge_to_4_4_4_and_stay_there(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    stream = MemoryStream()
    for i in range(12):
        stream.add(f"shard-{i:02d}")
    recorder = Recorder(stream)
    async with running(endpoints, fast_settings(unique_name), stream, recorder,
                       ["a", "b", "c"]) as (coordinators, _):
        await eventually(lambda: held(coordinators) == [4, 4, 4], 30, "4/4/4")
        assignment = [c.held_shards() for c in coordinators]
        for shard in stream.shards:
            stream.append(shard, 3)
        for _ in range(int(6 * TAKE_S / 0.05)):  # six sync rounds: nothing moves
            await asyncio.sleep(0.05)
            assert [c.held_shards() for c in coordinators] == assignment
        await eventually(lambda: recorder.delivered() == stream.all_sequence_numbers(), 10, "all")
        assert recorder.duplicates() == {}


async def test_a_killed_coordinators_shards_are_taken_within_failover_plus_one_take_interval(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    stream = MemoryStream()
    for i in range(12):
        stream.add(f"shard-{i:02d}")
    recorder = Recorder(stream)
    async with running(endpoints, fast_settings(unique_name), stream, recorder,
                       ["a", "b", "c"]) as (coordinators, _):
        await eventually(lambda: held(coordinators) == [4, 4, 4], 30, "4/4/4")
        victim, *survivors = coordinators
        orphans = victim.held_shards()
        await victim.abort()  # no release, no heartbeat: what kill -9 leaves behind
        elapsed = await eventually(
            lambda: orphans <= survivors[0].held_shards() | survivors[1].held_shards(),
            FAILOVER_S + TAKE_S + 5,
            "orphans taken",
        )
        # The promise is failover + one take interval; 0.5 s covers the scan and the writes
        # of three coordinators sharing one event loop and one moto server.
        assert elapsed <= FAILOVER_S + TAKE_S + 0.5
        assert held(survivors) == [6, 6]
        for shard in sorted(orphans):
            stream.append(shard, 4)
        await eventually(lambda: recorder.delivered() == stream.all_sequence_numbers(), 10, "all")
        # Declared dead by a survivor (on DynamoDB by exactly one; moto's conditional writes
        # are not atomic under concurrency, so two racing fences may both "win" there).
        assert sum(c.counters["fences"] for c in survivors) >= 1
        heartbeats = (await survivors[0].table.scan()).workers
        assert heartbeats[victim.worker_id].fenced_by in {s.worker_id for s in survivors}


async def test_planned_moves_deliver_nothing_twice(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    """A newcomer takes its share by graceful handoff, and a graceful close (SIGTERM) hands
    every lease over: records keep flowing all along and none is delivered twice."""
    stream = MemoryStream()
    for i in range(8):
        stream.add(f"shard-{i:02d}")
    recorder = Recorder(stream)
    writing = False

    async def keep_writing() -> None:
        while writing:
            for shard in stream.shards:
                stream.append(shard, 2)
            await asyncio.sleep(0.05)

    writer: asyncio.Task[None] | None = None
    try:
        async with running(endpoints, fast_settings(unique_name), stream, recorder,
                           ["a", "b"]) as (coordinators, start):
            await eventually(lambda: held(coordinators) == [4, 4], 30, "4/4")
            # Records flow only from now: moto, unlike DynamoDB, may let two racing first
            # takes both succeed, and this test is about planned moves.
            writing = True
            writer = asyncio.create_task(keep_writing())
            await start("c")
            await eventually(lambda: held(coordinators) == [2, 3, 3], 30, "3/3/2")
            assert sum(c.counters["handoffs"] for c in coordinators) >= 2
            await coordinators[0].aclose()
            await eventually(lambda: held(coordinators[1:]) == [4, 4], 10, "4/4 after close")
            writing = False
            await writer
            await eventually(
                lambda: recorder.delivered() == stream.all_sequence_numbers(), 10, "all delivered"
            )
            assert recorder.duplicates() == {}
            counters = [dict(c.counters) for c in coordinators]
            assert sum(c.counters["leases_lost"] for c in coordinators) == 0, counters
    finally:
        writing = False
        if writer is not None:
            await writer


async def test_children_are_read_only_after_all_their_parents_reached_shard_end(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    stream = MemoryStream()
    # History before the start: p0 was split into c1 and c2; then c2 merged with p1 into m.
    stream.add("p0", records=20)
    stream.add("p1", records=20)
    stream.split("p0", ("c1", "c2"))
    stream.append("c1", 20)
    stream.append("c2", 20)
    stream.close("p1")
    stream.close("c2")
    stream.add("m", ("c2", "p1"), records=20)
    recorder = Recorder(stream)
    async with running(endpoints, fast_settings(unique_name), stream, recorder,
                       ["a", "b"]) as (coordinators, _):
        await eventually(lambda: recorder.delivered() == stream.all_sequence_numbers(), 10,
                         "history read")
        stream.split("c1", ("d1", "d2"))  # and a split while running
        stream.append("d1", 10)
        stream.append("d2", 10)
        await eventually(lambda: recorder.delivered() == stream.all_sequence_numbers(), 10,
                         "children of the live split read")
        table = coordinators[0].table
        leases = {lease.key: lease for lease in (await table.scan()).leases}

    # Order of first deliveries (a duplicate, if the emulator ever let two workers race on
    # a first take, says nothing about the order in which shards were *started*).
    first_read: dict[str, float] = {}
    last_read: dict[str, float] = {}
    seen: set[str] = set()
    for delivery in recorder.deliveries:
        if delivery.seq in seen:
            continue
        seen.add(delivery.seq)
        first_read.setdefault(delivery.shard, delivery.at)
        last_read[delivery.shard] = delivery.at
    for child, parents in {"c1": ["p0"], "c2": ["p0"], "m": ["c2", "p1"], "d1": ["c1"],
                           "d2": ["c1"]}.items():
        for parent in parents:
            assert leases[parent].finished
            assert first_read[child] >= last_read[parent], f"{child} read before {parent} ended"
        assert leases[child].parent_shard_ids == set(parents)
    assert leases["c1"].child_shard_ids == {"d1", "d2"}


async def test_a_worker_cut_off_from_the_table_stops_before_anyone_takes_its_shards(
    endpoints: AwsEndpoints, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = MemoryStream()
    for i in range(4):
        stream.add(f"shard-{i:02d}")
    recorder = Recorder(stream)
    async with running(endpoints, fast_settings(unique_name), stream, recorder,
                       ["a", "b"]) as (coordinators, _):
        a, b = coordinators
        await eventually(lambda: held(coordinators) == [2, 2], 10, "2/2")
        cut_off = a.held_shards()
        cut_at = time.monotonic()

        async def unreachable(*args: object, **kwargs: object) -> int | None:
            raise LeaseTableUnavailable("network partition")

        table_a = a.table
        monkeypatch.setattr(table_a, "heartbeat", unreachable)
        await eventually(lambda: cut_off <= b.held_shards(), FAILOVER_S + TAKE_S + 5, "taken")
        # held_shards() changes when the lease is won; b's processor task records its start a
        # moment later.
        await eventually(
            lambda: all(("b", shard) in recorder.started_at for shard in cut_off), 5, "started"
        )
        for shard in cut_off:
            stopped = recorder.lost_at[("a", shard)]
            taken = recorder.started_at[("b", shard)]
            assert stopped < taken, f"{shard}: a stopped {taken - stopped:.3f} s too late"
            assert stopped - cut_at <= a.settings.local_expiry_s + 0.5  # + event-loop lag
        assert a.counters["local_expiries"] >= 1

        # a's checkpoints on its old leases are refused by the table too (fencing token).
        shard = sorted(cut_off)[0]
        now_leases = {lease.key: lease for lease in (await b.table.scan()).leases}
        stale_token = now_leases[shard].counter - 1
        with pytest.raises(LeaseLost):
            await table_a.checkpoint(shard, "a", stale_token, Checkpoint.after("1"))

        # Reconnected: a learns it was declared dead, registers again and gets its share back.
        monkeypatch.undo()
        await eventually(lambda: held(coordinators) == [2, 2], 10, "2/2 again")
        assert a.counters["fenced_by_others"] == 1
