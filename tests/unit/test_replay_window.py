"""Replay times and the window: the time syntax, and every bad --from/--to as one clear line."""

from __future__ import annotations

import pytest

from consumer.replay.window import (
    ReplayInputError,
    ReplayWindow,
    clock_text,
    compact_ms,
    human_span,
    iso_ms,
    parse_from,
    parse_time,
    window_from_input,
)

NOW = 1_795_000_000_000  # 2026-11-18T...Z, a whole second
HOUR = 3_600_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T21:00:00Z", 1_795_813_200_000),
        ("2026-11-27T22:00:00+01:00", 1_795_813_200_000),
        ("2026-11-27T21:00:00.250Z", 1_795_813_200_250),
        ("now", NOW),
        ("-90s", NOW - 90_000),
        ("-2h", NOW - 2 * HOUR),
        ("-3d", NOW - 72 * HOUR),
        ("-1w", NOW - 168 * HOUR),
        ("-1d12h", NOW - 36 * HOUR),
        ("-1.5h", NOW - 90 * 60_000),
    ],
)
def test_times_are_iso_with_a_zone_or_relative_to_now(text: str, expected: int) -> None:
    assert parse_time(text, "--from", NOW) == expected


def test_a_time_without_a_zone_is_refused_naming_the_option() -> None:
    with pytest.raises(ReplayInputError, match=r"--to '2026-11-27T21:00:00' has no time zone"):
        parse_time("2026-11-27T21:00:00", "--to", NOW)


@pytest.mark.parametrize("text", ["yesterday", "-2x", "+1h", "2026-13-01T00:00:00Z", ""])
def test_garbage_is_not_a_time(text: str) -> None:
    with pytest.raises(ReplayInputError, match="is not a time"):
        parse_time(text, "--from", NOW)


@pytest.mark.parametrize("text", ["TRIM_HORIZON", "trim_horizon", "earliest"])
def test_from_the_horizon_is_none(text: str) -> None:
    assert parse_from(text, NOW) is None


def test_names_and_durations_for_people() -> None:
    assert compact_ms(1_795_813_200_250) == "20261127T210000Z"
    assert compact_ms(None) == "trim-horizon"
    assert iso_ms(1_795_813_200_000) == "2026-11-27T21:00:00Z"
    assert iso_ms(1_795_813_200_250) == "2026-11-27T21:00:00.250Z"
    assert human_span(45_000) == "45 s"
    assert human_span(12 * 60_000) == "12 min"
    assert human_span(24 * HOUR) == "24.0 h"
    assert human_span(52 * HOUR) == "2 d 4 h"
    assert clock_text(3725.4) == "1:02:05"


def test_the_window_defaults_to_now() -> None:
    window = window_from_input("-2h", None, NOW)
    assert window == ReplayWindow(NOW - 2 * HOUR, NOW)
    assert window.cutoff_ms == NOW + 60_000


def test_from_in_the_future_is_an_error() -> None:
    with pytest.raises(ReplayInputError, match=r"--from .* is in the future \(now is "):
        window_from_input(iso_ms(NOW + HOUR), None, NOW)


def test_to_in_the_future_is_an_error() -> None:
    with pytest.raises(ReplayInputError, match=r"--to .* is in the future.*leave --to out"):
        window_from_input("-2h", iso_ms(NOW + HOUR), NOW)


@pytest.mark.parametrize("to", ["-3h", "-2h"])
def test_to_not_after_from_is_an_error(to: str) -> None:
    with pytest.raises(ReplayInputError, match=r"--to .* is not after --from "):
        window_from_input("-2h", to, NOW)


def test_a_negative_grace_is_an_error() -> None:
    with pytest.raises(ReplayInputError, match="--to-grace must be >= 0"):
        window_from_input("-2h", None, NOW, grace_ms=-1)


def test_to_bounds_change_time_and_from_bounds_arrival_time() -> None:
    window = ReplayWindow(from_ms=1_000, to_ms=5_000, grace_ms=500)
    assert window.applies(5_000_000) and not window.applies(5_000_001)
    assert window.arrived_in(1_000) and window.arrived_in(5_500)
    assert not window.arrived_in(999) and not window.arrived_in(5_501)
    assert ReplayWindow(None, 5_000).arrived_in(0)
