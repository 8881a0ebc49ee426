"""Issue 14.7: a replay into replication from before the tombstones' lifetime asks first."""

from __future__ import annotations

import io

import pytest

from consumer.replay.request import ReplayRequest, Source
from consumer.replay.runner import Console, ReplayOptions, check_tombstones, expired_tombstones
from consumer.replay.window import ReplayInputError, ReplayWindow, iso_ms
from consumer.settings import Settings

NOW_MS = 1_800_000_000_000
DAY_MS = 86_400_000
TTL_S = 7 * 86_400


def test_a_start_within_the_tombstones_lifetime_is_safe() -> None:
    assert expired_tombstones(NOW_MS - 6 * DAY_MS, NOW_MS, TTL_S) is None


def test_an_older_start_names_the_exact_span_at_risk() -> None:
    risk = expired_tombstones(NOW_MS - 30 * DAY_MS, NOW_MS, TTL_S)
    assert risk is not None
    span = f"between {iso_ms(NOW_MS - 30 * DAY_MS)} and {iso_ms(NOW_MS - 7 * DAY_MS)}"
    assert span in risk
    assert "604800 s" in risk


def settings() -> Settings:
    return Settings(
        stream={"name": "s"},
        pipelines={"replication": {"enabled": True, "table": "replica"}},
        dlq={"queue_url": "https://sqs.us-east-1.amazonaws.com/000000000000/q"},
    )


def request() -> ReplayRequest:
    window = ReplayWindow(NOW_MS - 30 * DAY_MS, NOW_MS)
    return ReplayRequest(window, ("replication",), Source.STREAM, "app-replay")


def test_the_replay_is_refused_without_the_flag_and_warned_with_it() -> None:
    console = Console(io.StringIO(), io.StringIO())
    start = NOW_MS - 30 * DAY_MS
    with pytest.raises(ReplayInputError, match="--accept-expired-tombstones"):
        check_tombstones(settings(), request(), ReplayOptions("-30d"), start, NOW_MS, console)
    accepted = ReplayOptions("-30d", accept_expired_tombstones=True)
    check_tombstones(settings(), request(), accepted, start, NOW_MS, console)
    assert "can bring them back" in console.err.getvalue()  # type: ignore[attr-defined]
