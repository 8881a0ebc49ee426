"""The assignment planner: a pure function from what one worker sees to what it should do.

`plan(PlanInput) -> list[Action]` does no I/O and reads no clock; the coordinator executes the
actions with conditional writes, so a plan made from a stale view can only fail, never break
an invariant. For a worker `me`:

1. Leases running here that the table shows with another owner or token are dropped (lost);
   a live worker's handoff request on one is honoured, a dead requester's declined.
2. Leases the table shows as ours but not running here are claimed (new fencing token).
3. Over the *available* leases (not finished, parents finished) and the *live* workers, each
   should hold floor(S/W) or ceil(S/W); a pending handoff counts for the requester.
   - Free leases (unowned, or owned by an expired or fenced worker; an expired one is fenced
     first) are split in key order among the workers below ceil, lowest count first, so
     workers with the same view do not collide. One left untaken `free_grace_s` is anyone's.
   - With none free, ask the most loaded worker `v` for one (a graceful handoff) while
     `count[v] - count[me] >= 2` and (`count[me] < floor` or `count[v] > ceil`): each move
     lowers the sum of squared counts, so balancing ends and a balanced state never moves.
     At most `max_steals` requests are outstanding; one not honoured within
     `handoff_timeout_s` becomes a steal.
4. The leader (the live worker with the smallest id) deletes dead workers' heartbeat items
   that own nothing.
Ties break by a stable hash of (me, key), so workers racing for free leases mostly differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from checkpoints.liveness import WorkerState, WorkerView
from checkpoints.model import Lease, is_available


@dataclass(frozen=True)
class Fence:
    """Declare `worker_id` dead (its heartbeat still at `counter`) before taking its lease."""

    worker_id: str
    counter: int


@dataclass(frozen=True)
class Take:
    lease_key: str
    owner: str | None
    counter: int
    fence: Fence | None = None


@dataclass(frozen=True)
class Claim:
    lease_key: str
    counter: int


@dataclass(frozen=True)
class RequestHandoff:
    lease_key: str
    owner: str
    counter: int


@dataclass(frozen=True)
class ForceSteal:
    lease_key: str
    owner: str
    counter: int


@dataclass(frozen=True)
class HandOff:
    lease_key: str
    to: str
    token: int


@dataclass(frozen=True)
class DeclineHandoff:
    lease_key: str
    requester: str
    token: int


@dataclass(frozen=True)
class Drop:
    lease_key: str
    reason: str


@dataclass(frozen=True)
class DeleteWorker:
    worker_id: str
    counter: int


Action = Take | Claim | RequestHandoff | ForceSteal | HandOff | DeclineHandoff | Drop | DeleteWorker
# Lease key -> fencing token of a lease running on this worker.
HeldTokens = Mapping[str, int]


@dataclass(frozen=True)
class PlanInput:
    me: str
    leases: Sequence[Lease]
    workers: Mapping[str, WorkerView]
    expired_leases: AbstractSet[str] = frozenset()
    held: HeldTokens = field(default_factory=dict)
    handing_off: AbstractSet[str] = frozenset()
    # Lease key -> when (coordinator clock) we asked its owner to hand it to us.
    my_requests: Mapping[str, float] = field(default_factory=dict)
    # Lease key -> when (coordinator clock) we first saw it free; absent means just now.
    free_since: Mapping[str, float] = field(default_factory=dict)
    free_grace_s: float = 10.0
    now: float = 0.0
    max_steals: int = 1
    handoff_timeout_s: float = 30.0


def rank(me: str, key: str) -> int:
    """A stable per-worker order: different workers prefer different leases."""
    digest = hashlib.blake2b(f"{me}|{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def live_workers(workers: Mapping[str, WorkerView], me: str) -> frozenset[str]:
    return frozenset(w for w, view in workers.items() if view.state is WorkerState.LIVE) | {me}


def leader(workers: Mapping[str, WorkerView], me: str) -> str:
    return min(live_workers(workers, me))


def targets(lease_count: int, worker_count: int) -> tuple[int, int]:
    """(floor, ceil) of leases per worker (`plan` always counts itself: worker_count >= 1)."""
    return (lease_count // worker_count, -(-lease_count // worker_count))


@dataclass(frozen=True)
class Balance:
    """How the available leases are spread: counts per live worker, and the free ones."""

    counts: dict[str, int]
    free: tuple[Lease, ...]
    available: tuple[Lease, ...]


def balance(inp: PlanInput) -> Balance:
    by_key = {lease.key: lease for lease in inp.leases}
    live = live_workers(inp.workers, inp.me)
    counts = dict.fromkeys(live, 0)
    free: list[Lease] = []
    available = [lease for lease in inp.leases if is_available(lease, by_key)]
    for lease in available:
        owner = lease.owner
        if owner is None:
            free.append(lease)
        elif owner in live:
            handoff_to = lease.handoff_to
            counts[handoff_to if handoff_to in live and handoff_to is not None else owner] += 1
        elif owner in inp.workers or lease.key in inp.expired_leases:
            free.append(lease)
        # else: an owner without a heartbeat item whose lease counter still moves: untouched.
    return Balance(counts, tuple(free), tuple(available))


def plan(inp: PlanInput) -> list[Action]:
    me = inp.me
    by_key = {lease.key: lease for lease in inp.leases}
    live = live_workers(inp.workers, me)
    actions: list[Action] = []

    for key, token in sorted(inp.held.items()):
        if key in inp.handing_off:
            continue
        lease = by_key.get(key)
        if lease is None:
            actions.append(Drop(key, "lease deleted"))
        elif lease.owner != me:
            actions.append(Drop(key, f"now owned by {lease.owner or 'nobody'}"))
        elif lease.counter != token:
            actions.append(Drop(key, "fencing token changed"))
        elif lease.finished:
            actions.append(Drop(key, "lease finished"))
        elif lease.handoff_to is not None and lease.handoff_to != me:
            if lease.handoff_to in live:
                actions.append(HandOff(key, lease.handoff_to, token))
            else:
                actions.append(DeclineHandoff(key, lease.handoff_to, token))

    for lease in inp.leases:
        if (
            lease.owner == me
            and lease.key not in inp.held
            and lease.key not in inp.handing_off
            and is_available(lease, by_key)
        ):
            actions.append(Claim(lease.key, lease.counter))

    if min(live) == me:
        owners = {lease.owner for lease in inp.leases} | {lease.handoff_to for lease in inp.leases}
        for worker_id, view in sorted(inp.workers.items()):
            if worker_id != me and view.state is not WorkerState.LIVE and worker_id not in owners:
                actions.append(DeleteWorker(worker_id, view.counter))

    spread = balance(inp)
    counts = spread.counts
    total = sum(counts.values()) + len(spread.free)
    if total == 0:
        return actions
    floor_, ceil_ = targets(total, len(live))

    if spread.free:
        assignment = assign_free(spread.free, counts, ceil_)
        mine = [lease for lease in spread.free if assignment.get(lease.key) == me]
        # Left free too long (its worker is slow or just died): anyone takes it, even above
        # ceil. A shard nobody reads is worse than an imbalance that balancing undoes.
        mine += sorted(
            (
                lease
                for lease in spread.free
                if assignment.get(lease.key) != me
                and inp.now - inp.free_since.get(lease.key, inp.now) >= inp.free_grace_s
            ),
            key=lambda lease: rank(me, lease.key),
        )
        for lease in mine:
            fence = None
            owner_view = inp.workers.get(lease.owner) if lease.owner is not None else None
            if owner_view is not None and owner_view.state is WorkerState.EXPIRED:
                fence = Fence(owner_view.worker_id, owner_view.counter)
            actions.append(Take(lease.key, lease.owner, lease.counter, fence))
        return actions

    outstanding = 0
    for key, asked_at in sorted(inp.my_requests.items()):
        lease = by_key.get(key)
        if lease is None or lease.handoff_to != me or lease.owner == me or lease.owner not in live:
            continue
        if inp.now - asked_at >= inp.handoff_timeout_s:
            actions.append(ForceSteal(key, lease.owner, lease.counter))
        else:
            outstanding += 1

    budget = inp.max_steals - outstanding
    asked: set[str] = set()
    while budget > 0:
        victims = [
            v
            for v in live
            if v != me
            and counts[v] - counts[me] >= 2
            and (counts[me] < floor_ or counts[v] > ceil_)
        ]
        if not victims:
            break
        chosen: Lease | None = None
        for victim in sorted(victims, key=lambda v: (-counts[v], rank(me, v))):
            candidates = [
                lease
                for lease in spread.available
                if lease.owner == victim and lease.handoff_to is None and lease.key not in asked
            ]
            if candidates:
                chosen = min(candidates, key=lambda lease: rank(me, lease.key))
                break
        if chosen is None:
            break
        owner = chosen.owner
        assert owner is not None
        actions.append(RequestHandoff(chosen.key, owner, chosen.counter))
        asked.add(chosen.key)
        counts[owner] -= 1
        counts[me] += 1
        budget -= 1
    return actions


def assign_free(
    free: Sequence[Lease], counts: Mapping[str, int], ceil_: int
) -> dict[str, str]:
    """Free lease key -> the live worker that should take it: each in key order goes to the
    worker with the fewest leases so far (ties by id), never above ceil."""
    running = dict(counts)
    assignment: dict[str, str] = {}
    for lease in sorted(free, key=lambda lease: lease.key):
        below = [w for w, count in running.items() if count < ceil_]
        if not below:
            break
        worker = min(below, key=lambda w: (running[w], w))
        assignment[lease.key] = worker
        running[worker] += 1
    return assignment


def plan_release(
    mine: Sequence[str], counts: Mapping[str, int], me: str
) -> dict[str, str | None]:
    """Graceful shutdown: gives each of our leases to the least loaded other live worker
    (ties by id), or to nobody (None) when we are alone."""
    others = {w: c for w, c in counts.items() if w != me}
    assignment: dict[str, str | None] = {}
    for key in sorted(mine):
        target = assignment[key] = min(others, key=lambda w: (others[w], w), default=None)
        if target is not None:
            others[target] += 1
    return assignment
