"""The assignment planner, as a table of situations and the actions each one calls for."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkpoints.liveness import WorkerState, WorkerView
from checkpoints.model import Checkpoint, Lease
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
    assign_free,
    plan,
    plan_release,
    targets,
)

LIVE, EXPIRED, FENCED = WorkerState.LIVE, WorkerState.EXPIRED, WorkerState.FENCED


def lease(
    key: str,
    owner: str | None = None,
    counter: int = 1,
    *,
    parents: tuple[str, ...] = (),
    finished: bool = False,
    handoff_to: str | None = None,
) -> Lease:
    return Lease(
        key=key,
        shard_id=key,
        owner=owner,
        counter=counter,
        checkpoint=Checkpoint.shard_end() if finished else Checkpoint.trim_horizon(),
        parent_shard_ids=frozenset(parents),
        handoff_to=handoff_to,
    )


def workers(**states: WorkerState) -> dict[str, WorkerView]:
    return {name: WorkerView(name, state, 7) for name, state in states.items()}


def owned(counts: dict[str, int]) -> list[Lease]:
    """Leases s00, s01, ... owned in order by the given workers."""
    leases: list[Lease] = []
    for owner, count in counts.items():
        for _ in range(count):
            leases.append(lease(f"s{len(leases):02d}", owner))
    return leases


def unowned(count: int) -> list[Lease]:
    return [lease(f"s{i:02d}") for i in range(count)]


@dataclass(frozen=True)
class Case:
    name: str
    me: str
    leases: list[Lease]
    workers: dict[str, WorkerView]
    expected: list[Action]
    held: dict[str, int] = field(default_factory=dict)
    expired_leases: frozenset[str] = frozenset()
    handing_off: frozenset[str] = frozenset()
    my_requests: dict[str, float] = field(default_factory=dict)
    free_since: dict[str, float] = field(default_factory=dict)
    now: float = 100.0
    max_steals: int = 1


CASES = [
    Case(
        "first start: free leases are split by key order, lowest count first",
        me="b",
        leases=unowned(6),
        workers=workers(a=LIVE, b=LIVE, c=LIVE),
        expected=[Take("s01", None, 1), Take("s04", None, 1)],
    ),
    Case(
        "a worker at ceil takes nothing more",
        me="a",
        leases=[*owned({"a": 2}), lease("s02"), lease("s03")],
        workers=workers(a=LIVE, b=LIVE),
        expected=[],
        held={"s00": 1, "s01": 1},
    ),
    Case(
        "an expired owner is fenced before its lease is taken",
        me="a",
        leases=[lease("s00", "dead", 5)],
        workers=workers(a=LIVE, dead=EXPIRED),
        expected=[Take("s00", "dead", 5, Fence("dead", 7))],
    ),
    Case(
        "a fenced owner's lease is taken without another fence",
        me="a",
        leases=[lease("s00", "dead", 5)],
        workers=workers(a=LIVE, dead=FENCED),
        expected=[Take("s00", "dead", 5)],
    ),
    Case(
        "a heartbeat-less (KCL) owner whose lease counter stood still is taken",
        me="a",
        leases=[lease("s00", "kcl-worker", 9), lease("s01", "kcl-worker", 3)],
        workers=workers(a=LIVE),
        expired_leases=frozenset({"s00"}),
        expected=[Take("s00", "kcl-worker", 9)],
    ),
    Case(
        "balanced 4/4/4: nothing moves (no ping-pong)",
        me="c",
        leases=owned({"a": 4, "b": 4, "c": 4}),
        workers=workers(a=LIVE, b=LIVE, c=LIVE),
        held={f"s{i:02d}": 1 for i in range(8, 12)},
        expected=[],
    ),
    Case(
        "balanced 4/4/3/3 of 14: floor and ceil both fine",
        me="d",
        leases=owned({"a": 4, "b": 4, "c": 3, "d": 3}),
        workers=workers(a=LIVE, b=LIVE, c=LIVE, d=LIVE),
        held={"s11": 1, "s12": 1, "s13": 1},
        expected=[],
    ),
    Case(
        "below floor: ask the most loaded worker for one lease",
        me="c",
        leases=owned({"a": 5, "b": 4, "c": 3}),
        workers=workers(a=LIVE, b=LIVE, c=LIVE),
        held={"s09": 1, "s10": 1, "s11": 1},
        expected=[RequestHandoff("s00", "a", 1)],
    ),
    Case(
        "at floor but a worker above ceil: 5/3/3/3 of 14 asks the 5",
        me="b",
        leases=owned({"a": 5, "b": 3, "c": 3, "d": 3}),
        workers=workers(a=LIVE, b=LIVE, c=LIVE, d=LIVE),
        held={"s05": 1, "s06": 1, "s07": 1},
        expected=[RequestHandoff("s03", "a", 1)],
    ),
    Case(
        "difference of one never moves: 5/4 of 9",
        me="b",
        leases=owned({"a": 5, "b": 4}),
        workers=workers(a=LIVE, b=LIVE),
        held={f"s{i:02d}": 1 for i in range(5, 9)},
        expected=[],
    ),
    Case(
        "a newcomer asks two different victims with two steals per interval",
        me="c",
        leases=owned({"a": 6, "b": 6}),
        workers=workers(a=LIVE, b=LIVE, c=LIVE),
        max_steals=2,
        expected=[RequestHandoff("s00", "a", 1), RequestHandoff("s06", "b", 1)],
    ),
    Case(
        "a pending request counts for the requester: no second request",
        me="c",
        leases=[*owned({"a": 6, "b": 6})[:11], lease("s11", "b", handoff_to="c")],
        workers=workers(a=LIVE, b=LIVE, c=LIVE),
        my_requests={"s11": 99.0},
        expected=[],
    ),
    Case(
        "a request not honoured within the handoff timeout becomes a steal",
        me="c",
        leases=[*owned({"a": 6, "b": 5}), lease("s11", "b", 4, handoff_to="c")],
        workers=workers(a=LIVE, b=LIVE, c=LIVE),
        my_requests={"s11": 60.0},
        expected=[ForceSteal("s11", "b", 4), RequestHandoff("s00", "a", 1)],
    ),
    Case(
        "held leases the table shows elsewhere are dropped",
        me="a",
        leases=[lease("s00", "b", 2), lease("s01", "a", 3), lease("s03", "a", 1)],
        workers=workers(a=LIVE, b=LIVE),
        held={"s00": 1, "s01": 2, "s02": 1, "s03": 1},
        expected=[
            Drop("s00", "now owned by b"),
            Drop("s01", "fencing token changed"),
            Drop("s02", "lease deleted"),
        ],
    ),
    Case(
        "a live worker's handoff request is honoured, a dead one's declined",
        me="a",
        leases=[lease("s00", "a", 2, handoff_to="b"), lease("s01", "a", 2, handoff_to="gone")],
        workers=workers(a=LIVE, b=LIVE, gone=EXPIRED),
        held={"s00": 2, "s01": 2},
        expected=[HandOff("s00", "b", 2), DeclineHandoff("s01", "gone", 2)],
    ),
    Case(
        "a lease being handed off is left alone",
        me="a",
        leases=[
            lease("s00", "a", 2, handoff_to="b"),
            *owned({"a": 3, "b": 1})[1:],
        ],
        workers=workers(a=LIVE, b=LIVE),
        held={"s00": 2, "s01": 1, "s02": 1},
        handing_off=frozenset({"s00"}),
        expected=[],
    ),
    Case(
        "ours in the table but not running here: claim it",
        me="a",
        leases=[lease("s00", "a", 4), lease("s01", "b", 1)],
        workers=workers(a=LIVE, b=LIVE),
        expected=[Claim("s00", 4)],
    ),
    Case(
        "a child waits while a parent is unfinished",
        me="a",
        leases=[lease("p1", "b", finished=False), lease("c1", parents=("p1",))],
        workers=workers(a=LIVE, b=LIVE),
        expected=[],
    ),
    Case(
        "a child of finished (or cleaned-up) parents is taken",
        me="a",
        leases=[lease("p1", finished=True), lease("c1", parents=("p1", "p0-cleaned-up"))],
        workers=workers(a=LIVE),
        expected=[Take("c1", None, 1)],
    ),
    Case(
        "a merge child waits for both parents",
        me="a",
        leases=[
            lease("p1", finished=True),
            lease("p2", "b"),
            lease("m", parents=("p1", "p2")),
        ],
        workers=workers(a=LIVE, b=LIVE),
        expected=[],
    ),
    Case(
        "the leader deletes a dead worker's heartbeat once it owns nothing",
        me="a",
        leases=[lease("s00", "a"), lease("s01", "busy_dead")],
        workers=workers(a=LIVE, idle_dead=FENCED, busy_dead=EXPIRED),
        held={"s00": 1},
        expected=[DeleteWorker("idle_dead", 7), Take("s01", "busy_dead", 1, Fence("busy_dead", 7))],
    ),
    Case(
        "a non-leader deletes nothing",
        me="b",
        leases=[lease("s00", "a"), lease("s01", "b")],
        workers=workers(a=LIVE, b=LIVE, idle_dead=FENCED),
        held={"s01": 1},
        expected=[],
    ),
    Case(
        "a free lease is left to the worker it falls to",
        me="a",
        leases=[lease("s00", "a"), lease("s01")],
        workers=workers(a=LIVE, b=LIVE),
        held={"s00": 1},
        free_since={"s01": 99.0},
        expected=[],
    ),
    Case(
        "a free lease left to a slow worker is open to all after the grace time",
        me="a",
        leases=[lease("s00", "a"), lease("s01")],
        workers=workers(a=LIVE, b=LIVE),
        held={"s00": 1},
        free_since={"s01": 0.0},
        expected=[Take("s01", None, 1)],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_planner(case: Case) -> None:
    actions = plan(
        PlanInput(
            me=case.me,
            leases=case.leases,
            workers=case.workers,
            expired_leases=case.expired_leases,
            held=case.held,
            handing_off=case.handing_off,
            my_requests=case.my_requests,
            free_since=case.free_since,
            free_grace_s=10.0,
            now=case.now,
            max_steals=case.max_steals,
            handoff_timeout_s=30.0,
        )
    )
    assert actions == case.expected


@pytest.mark.parametrize(
    ("leases", "workers_", "expected"),
    [(12, 3, (4, 4)), (14, 4, (3, 4)), (0, 3, (0, 0)), (2, 5, (0, 1)), (100, 4, (25, 25))],
)
def test_targets(leases: int, workers_: int, expected: tuple[int, int]) -> None:
    assert targets(leases, workers_) == expected


def test_assign_free_fills_the_lowest_first_and_never_passes_ceil() -> None:
    assignment = assign_free(unowned(5), {"a": 3, "b": 0, "c": 1}, ceil_=3)
    assert Counter(assignment.values()) == {"b": 3, "c": 2}


def test_every_worker_computes_the_same_split_of_free_leases() -> None:
    leases = unowned(12)
    view = workers(a=LIVE, b=LIVE, c=LIVE)
    taken: list[str] = []
    for me in view:
        taken += [a.lease_key for a in plan(PlanInput(me, leases, view)) if isinstance(a, Take)]
    assert sorted(taken) == [lease.key for lease in leases]  # each exactly once


def test_release_goes_to_the_least_loaded_others() -> None:
    assignment = plan_release(["x1", "x2", "x3"], {"me": 3, "a": 5, "b": 4}, "me")
    assert assignment == {"x1": "b", "x2": "a", "x3": "b"}
    assert plan_release(["x1"], {"me": 1}, "me") == {"x1": None}


# --- convergence of the whole system, with every worker planning on a perfect view ---------


def simulate_round(table: dict[str, Lease], names: list[str]) -> int:
    """Every worker plans on the current table and its actions apply at once, as the
    coordinator's conditional writes would. Returns the number of ownership changes."""
    moves = 0
    view = workers(**dict.fromkeys(names, LIVE))
    for me in names:
        held = {key: lease.counter for key, lease in table.items() if lease.owner == me}
        for action in plan(PlanInput(me, list(table.values()), view, held=held, max_steals=2)):
            match action:
                case Take(key) | ForceSteal(key):
                    table[key] = replace(table[key], owner=me, counter=table[key].counter + 1,
                                         handoff_to=None)
                    moves += 1
                case RequestHandoff(key):
                    table[key] = replace(table[key], handoff_to=me)
                case HandOff(key, to):
                    table[key] = replace(table[key], owner=to, counter=table[key].counter + 1,
                                         handoff_to=None)
                    moves += 1
                case DeclineHandoff(key):
                    table[key] = replace(table[key], handoff_to=None)
                case _:
                    raise AssertionError(f"unexpected {action}")
    return moves


@settings(max_examples=150, deadline=None)
@given(
    shard_count=st.integers(min_value=1, max_value=40),
    worker_count=st.integers(min_value=1, max_value=7),
    data=st.data(),
)
def test_any_start_converges_to_floor_or_ceil_and_then_never_moves(
    shard_count: int, worker_count: int, data: st.DataObject
) -> None:
    names = [f"w{i}" for i in range(worker_count)]
    owners = data.draw(
        st.lists(st.sampled_from([None, *names]), min_size=shard_count, max_size=shard_count)
    )
    table = {
        f"s{i:03d}": lease(f"s{i:03d}", owner) for i, owner in enumerate(owners)
    }
    floor_, ceil_ = targets(shard_count, worker_count)
    for _ in range(4 * shard_count + 10):
        simulate_round(table, names)
        counts = Counter(lease.owner for lease in table.values())
        if None not in counts and all(floor_ <= counts[name] <= ceil_ for name in names):
            break
    counts = Counter(lease.owner for lease in table.values())
    assert None not in counts
    assert all(floor_ <= counts[name] <= ceil_ for name in names), counts
    for _ in range(3):
        assert simulate_round(table, names) == 0
