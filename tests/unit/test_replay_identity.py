"""Issue 22.1 and 22.2: a replay resumes only its own window; --to is exact to the microsecond."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumer.replay.request import RecordedWindow, ReplayRequest, Source, reconcile
from consumer.replay.window import ReplayInputError, ReplayWindow, window_from_input

NOW_MS = 1_800_000_000_000
T1, T3 = NOW_MS - 3_600_000, NOW_MS - 600_000


def request(to_ms: int, pipelines: tuple[str, ...] = ("replication",)) -> ReplayRequest:
    return ReplayRequest(ReplayWindow(T1, to_ms), pipelines, Source.STREAM, "app-replay-x")


def test_the_same_window_resumes() -> None:
    recorded = RecordedWindow.of(request(T3), to_given=True)
    assert reconcile(request(T3), recorded, explicit_to=True) == request(T3)


@pytest.mark.parametrize(
    ("later", "explicit_to"),
    [
        (request(NOW_MS), False),  # the case: --to T3 first, then no --to
        (request(NOW_MS - 60_000), True),  # a different --to
        (request(T1 + 60_000), True),  # an earlier --to would count as complete
        (request(T3, ("replication", "search")), True),  # other pipelines
    ],
)
def test_another_window_is_refused_in_one_line_naming_the_replay(
    later: ReplayRequest, explicit_to: bool
) -> None:
    recorded = RecordedWindow.of(request(T3), to_given=True)
    with pytest.raises(ReplayInputError) as refused:
        reconcile(later, recorded, explicit_to=explicit_to)
    message = str(refused.value)
    assert "\n" not in message
    assert "app-replay-x" in message and "delete-table --table-name app-replay-x-leases" in message


def test_an_interrupted_replay_up_to_now_resumes_its_first_now() -> None:
    first = request(T3)
    recorded = RecordedWindow.of(first, to_given=False)
    resumed = reconcile(request(NOW_MS), recorded, explicit_to=False)
    assert resumed.window.to_us == first.window.to_us


def test_a_table_without_a_recorded_window_is_refused() -> None:
    with pytest.raises(ReplayInputError, match="no recorded window"):
        reconcile(request(T3), None, explicit_to=True)


def test_the_tag_round_trips() -> None:
    window = RecordedWindow.of(request(T3), to_given=False)
    assert RecordedWindow.from_tag(window.tag_value()) == window
    assert len(window.tag_value()) <= 256  # DynamoDB tag values: at most 256 characters


def test_to_keeps_microseconds() -> None:
    """docs/replay.md: a change is applied if made at or before --to (microsecond times)."""
    to = "2026-12-05T10:00:00.527400Z"
    base_us = int(datetime(2026, 12, 5, 10, 0, 0, tzinfo=UTC).timestamp()) * 1_000_000
    window = window_from_input("-1d", to, now_ms=base_us // 1000 + 3_600_000)
    assert window.applies(base_us + 527_001)
    assert window.applies(base_us + 527_400)
    assert not window.applies(base_us + 527_401)
