"""Completion and progress of a replay: when every shard is settled, the share of the time
range per shard, rate and ETA, and both renderings."""

from __future__ import annotations

import io

from consumer.replay.progress import (
    ProgressReporter,
    RateMeter,
    eta_s,
    progress_line,
    shard_share,
    snapshot,
)
from consumer.replay.status import (
    STOPPED,
    ReplayState,
    Settled,
    ShardStatus,
    is_complete,
    outstanding,
    settlement,
    stopped_shards,
)

TO = 10_000


def shard(
    shard_id: str,
    *parents: str,
    finished: bool = False,
    records: int = 0,
    at_ms: int | None = None,
    done_to_ms: int | None = None,
    end: str | None = None,
    error: str | None = None,
) -> ShardStatus:
    return ShardStatus(
        shard_id,
        frozenset(parents),
        finished=finished,
        records=records,
        at_ms=at_ms,
        done_to_ms=done_to_ms,
        end=end,
        error=error,
    )


def test_a_replay_is_complete_when_every_shard_is_settled() -> None:
    state = ReplayState(
        (
            shard("p", finished=True),  # closed, read to SHARD_END
            shard("c1", "p", done_to_ms=TO, end="reached-to"),
            shard("c2", "p", done_to_ms=TO, end="tip"),
            shard("g", "c1"),  # its parent stopped at --to: never read, not needed
        )
    )
    assert settlement(state, TO) == {
        "p": Settled.FINISHED,
        "c1": Settled.DONE,
        "c2": Settled.DONE,
        "g": Settled.BLOCKED,
    }
    assert is_complete(state, TO, expected=["p", "c1", "c2", "g"])


def test_not_complete_while_a_shard_is_running_or_has_no_lease_yet() -> None:
    running = ReplayState((shard("a", done_to_ms=TO), shard("b", at_ms=5_000)))
    assert outstanding(running, TO) == ["b"]
    settled = ReplayState((shard("a", done_to_ms=TO),))
    assert outstanding(settled, TO, expected=["a", "b"]) == ["b"]
    assert not is_complete(ReplayState(), TO)  # before the first discovery


def test_a_child_of_a_finished_parent_still_has_to_be_read() -> None:
    state = ReplayState((shard("p", finished=True), shard("c", "p")))
    assert outstanding(state, TO) == ["c"]


def test_a_done_mark_for_an_earlier_to_does_not_count() -> None:
    state = ReplayState((shard("a", done_to_ms=TO - 1),))  # resumed with a later --to
    assert outstanding(state, TO) == ["a"]
    assert not outstanding(ReplayState((shard("a", done_to_ms=TO + 1),)), TO)


def test_a_stopped_shard_settles_the_replay_as_failed() -> None:
    state = ReplayState((shard("a", end=STOPPED, error="poison"), shard("b", "a")))
    assert is_complete(state, TO)
    assert stopped_shards(state) == {"a": "poison"}


def test_the_share_of_the_time_range_per_shard() -> None:
    assert shard_share(shard("a", at_ms=5_000), False, 0, TO) == 0.5
    assert shard_share(shard("a"), False, 0, TO) == 0.0
    assert shard_share(shard("a", at_ms=20_000), False, 0, TO) == 0.99  # 100 % only when done
    assert shard_share(shard("a", at_ms=-5), False, 0, TO) == 0.0
    assert shard_share(shard("a"), True, 0, TO) == 1.0


def test_eta_extrapolates_the_elapsed_time() -> None:
    assert eta_s(60, 0.25) == 180
    assert eta_s(60, 1.0) == 0
    assert eta_s(60, 0.001) is None


def test_rate_over_a_sliding_window() -> None:
    meter = RateMeter(window_s=10)
    assert meter.add(0, 0) == 0
    assert meter.add(5, 500) == 100
    assert meter.add(10, 1500) == 150
    assert meter.add(20, 1500) == 0  # nothing in the last 10 s


def test_progress_line_and_snapshot() -> None:
    state = ReplayState(
        (
            shard("shardId-000000000000", records=700, done_to_ms=TO),
            shard("shardId-000000000001", records=300, at_ms=5_000),
        )
    )
    current = snapshot(state, 0, TO, elapsed_s=30, rate=33.3)
    assert current.records == 1000 and current.share == 0.75 and current.settled == 1
    assert current.eta_s == 10
    line = progress_line(current)
    assert "75.0%" in line and "1,000 records" in line and "33/s" in line
    assert "ETA 0:00:10" in line and "shards 1/2 [0:100% 1:50%]" in line
    many = ReplayState(tuple(shard(f"shardId-{n:012d}", at_ms=n * 1_000) for n in range(10)))
    assert progress_line(snapshot(many, 0, TO, 1, 0)).endswith("[ ▁▂▂▃▄▅▆▆▇]")


def test_reporter_draws_a_line_on_a_terminal_and_ends_it() -> None:
    out = io.StringIO()
    times = iter([0.0, 1.0, 2.0])
    reporter = ProgressReporter("bar", 0, TO, out=out, clock=lambda: next(times))
    reporter.update(ReplayState((shard("a", records=5, at_ms=2_000),)))
    reporter.finish()
    text = out.getvalue()
    assert text.startswith("\rreplay [") and text.endswith("\x1b[K\n")


def test_reporter_without_a_terminal_logs_every_interval() -> None:
    out = io.StringIO()
    now = [0.0]
    reporter = ProgressReporter("log", 0, TO, out=out, log_interval_s=5, clock=lambda: now[0])
    state = ReplayState((shard("a", records=5, at_ms=2_000),))
    for moment in (0.0, 1.0, 6.0):
        now[0] = moment
        last = reporter.update(state)
    assert out.getvalue() == ""  # nothing drawn
    assert last.records == 5
