"""--from against the stream's trim horizon: a warning with the missing span, a note for a
time before the stream existed, and where progress starts."""

from __future__ import annotations

from consumer.replay.stream import HOUR_MS, StreamFacts, check_horizon
from consumer.replay.window import iso_ms

NOW = 1_795_813_200_000


def facts(
    retention_hours: int = 24,
    created_ms: int = NOW - 30 * 24 * HOUR_MS,
    oldest_arrival_ms: int | None = None,
) -> StreamFacts:
    return StreamFacts(
        name="orders-cdc",
        arn="arn:aws:kinesis:us-east-1:1:stream/orders-cdc",
        retention_hours=retention_hours,
        created_ms=created_ms,
        on_demand=True,
        oldest_arrival_ms=oldest_arrival_ms,
    )


def test_from_within_retention_starts_there() -> None:
    check = check_horizon(NOW - 2 * HOUR_MS, facts(), NOW)
    assert check.start_ms == NOW - 2 * HOUR_MS and check.warning is None and check.note is None


def test_from_before_the_trim_horizon_warns_with_the_missing_span() -> None:
    oldest = NOW - 23 * HOUR_MS
    check = check_horizon(NOW - 3 * 24 * HOUR_MS, facts(oldest_arrival_ms=oldest), NOW)
    assert check.warning is not None
    assert "is before the trim horizon of stream orders-cdc (retention 24 h" in check.warning
    assert f"arrived before {iso_ms(NOW - 24 * HOUR_MS)} are gone" in check.warning
    assert f"its oldest record arrived {iso_ms(oldest)}" in check.warning
    assert "starting at the horizon; 2 d 0 h of the requested history is missing" in check.warning
    assert "--source archive" in check.warning
    assert check.start_ms == oldest


def test_from_before_the_stream_existed_is_only_a_note() -> None:
    created = NOW - 5 * HOUR_MS
    check = check_horizon(NOW - 10 * HOUR_MS, facts(created_ms=created), NOW)
    assert check.warning is None
    assert check.note is not None and "before stream orders-cdc was created" in check.note
    assert check.start_ms == created


def test_from_the_trim_horizon_starts_at_the_oldest_record() -> None:
    assert check_horizon(None, facts(retention_hours=168), NOW).start_ms == NOW - 168 * HOUR_MS
    oldest = NOW - HOUR_MS
    assert check_horizon(None, facts(oldest_arrival_ms=oldest), NOW).start_ms == oldest
