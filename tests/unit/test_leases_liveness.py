"""Liveness on the observer's own clock, and the fencing timing that makes failover safe."""

from __future__ import annotations

import bisect

from hypothesis import given, settings
from hypothesis import strategies as st

from checkpoints.liveness import LivenessTracker, WorkerState
from checkpoints.model import Lease, TableSnapshot, WorkerHeartbeat

FAILOVER_S = 10.0


def snapshot(*heartbeats: WorkerHeartbeat, leases: tuple[Lease, ...] = ()) -> TableSnapshot:
    return TableSnapshot(leases=leases, workers={h.worker_id: h for h in heartbeats})


def test_a_new_heartbeat_is_live_at_once() -> None:
    tracker = LivenessTracker(FAILOVER_S)
    tracker.observe(snapshot(WorkerHeartbeat("a", 3)), now=100.0)
    assert tracker.workers(100.0)["a"].state is WorkerState.LIVE


def test_an_unchanged_counter_expires_failover_after_it_was_first_seen() -> None:
    tracker = LivenessTracker(FAILOVER_S)
    tracker.observe(snapshot(WorkerHeartbeat("a", 3)), now=100.0)
    tracker.observe(snapshot(WorkerHeartbeat("a", 3)), now=105.0)
    assert tracker.workers(109.9)["a"].state is WorkerState.LIVE
    assert tracker.workers(110.0)["a"].state is WorkerState.EXPIRED
    assert tracker.workers(110.0)["a"].counter == 3


def test_a_changing_counter_keeps_a_worker_live() -> None:
    tracker = LivenessTracker(FAILOVER_S)
    for step in range(10):
        tracker.observe(snapshot(WorkerHeartbeat("a", step)), now=100.0 + 3 * step)
    assert tracker.workers(128.0)["a"].state is WorkerState.LIVE


def test_a_fenced_worker_is_dead_and_a_re_registered_one_live_again() -> None:
    tracker = LivenessTracker(FAILOVER_S)
    tracker.observe(snapshot(WorkerHeartbeat("a", 3, fenced_by="b")), now=100.0)
    assert tracker.workers(100.0)["a"].state is WorkerState.FENCED
    tracker.observe(snapshot(WorkerHeartbeat("a", 4)), now=101.0)
    assert tracker.workers(101.0)["a"].state is WorkerState.LIVE


def test_a_deleted_heartbeat_is_forgotten() -> None:
    tracker = LivenessTracker(FAILOVER_S)
    tracker.observe(snapshot(WorkerHeartbeat("a", 3)), now=100.0)
    tracker.observe(snapshot(), now=101.0)
    assert tracker.workers(200.0) == {}


def test_leases_of_owners_without_heartbeat_expire_on_their_own_counter() -> None:
    tracker = LivenessTracker(FAILOVER_S)
    kcl = (Lease("s1", "s1", owner="kcl", counter=5), Lease("s2", "s2", owner="kcl", counter=1))
    tracker.observe(snapshot(leases=kcl), now=100.0)
    moved = (kcl[0], Lease("s2", "s2", owner="kcl", counter=2))
    tracker.observe(snapshot(leases=moved), now=106.0)
    assert tracker.expired_leases(110.0) == {"s1"}
    assert tracker.expired_leases(116.0) == {"s1", "s2"}


def test_next_deadline_is_when_an_owner_would_expire() -> None:
    tracker = LivenessTracker(FAILOVER_S)
    tracker.observe(snapshot(WorkerHeartbeat("a", 1), WorkerHeartbeat("b", 1)), now=100.0)
    tracker.observe(snapshot(WorkerHeartbeat("a", 2), WorkerHeartbeat("b", 1)), now=103.0)
    assert tracker.next_deadline(104.0) == 110.0
    assert tracker.next_deadline(104.0, owners={"a": 3}) == 113.0
    assert tracker.next_deadline(114.0) is None


@settings(max_examples=300, deadline=None)
@given(
    write_gaps=st.lists(st.floats(0.5, 4.0), min_size=1, max_size=8),
    latencies=st.lists(st.floats(0.0, 2.0), min_size=8, max_size=8),
    scan_start=st.floats(0.0, 5.0),
    scan_every=st.floats(0.2, 6.0),
    scan_latency=st.floats(0.0, 1.5),
)
def test_an_owner_always_stops_before_any_observer_may_take_its_leases(
    write_gaps: list[float],
    latencies: list[float],
    scan_start: float,
    scan_every: float,
    scan_latency: float,
) -> None:
    """The owner's heartbeat writes start at s_k and land at s_k + latency_k. It keeps working
    until (last successful start) + local_expiry. An observer scans at random times; it may
    take the owner's leases once the tracker says EXPIRED. That moment is always later than
    the owner's own stop, whatever the latencies and scan timing, with no clock sync."""
    local_expiry = FAILOVER_S - 3.0
    starts: list[float] = []
    t = 0.0
    for gap in write_gaps:
        t += gap
        starts.append(t)
    pairs = zip(starts, latencies[: len(starts)], strict=True)
    landed = sorted((s + lat, counter) for counter, (s, lat) in enumerate(pairs))
    landed_times = [when for when, _ in landed]
    owner_stops_at = max(starts) + local_expiry  # no later write succeeds: the owner died

    def value_at(moment: float) -> int | None:
        index = bisect.bisect_right(landed_times, moment)
        return None if index == 0 else max(c for _, c in landed[:index])

    tracker = LivenessTracker(FAILOVER_S)
    scan = scan_start
    while True:
        value = value_at(scan)
        done = scan + scan_latency  # the read happened at `scan`, the answer arrives later
        if value is not None:
            tracker.observe(snapshot(WorkerHeartbeat("owner", value)), now=done)
            view = tracker.workers(done)["owner"]
            if view.state is WorkerState.EXPIRED:
                assert done > owner_stops_at
                break
        scan += scan_every
        assert scan < 1000
