"""Times on the replay command line: ISO 8601 with a zone, relative (`-2h`), or the horizon.

- `2026-11-27T21:00:00Z`, `2026-11-27T22:00:00+01:00`: absolute; a time without a zone is
  refused (a replay an hour off because of a local clock is hard to notice).
- `-90s`, `-30m`, `-2h`, `-3d`, `-1w`, `-1d12h`: that long before now. `now` is now.
- `TRIM_HORIZON` or `earliest` (`--from` only): the oldest record the source holds (the
  stream's trim horizon, or the start of the archive).

Every parser returns epoch milliseconds (Kinesis arrival times are milliseconds) and raises
ReplayInputError with one line naming the option.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from consumer.replay.errors import ReplayInputError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST_WORDS = frozenset({"trim_horizon", "earliest"})
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_RELATIVE = re.compile(r"^-(?:\d+(?:\.\d+)?[smhdw])+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_time(text: str, option: str, now_ms: int) -> int:
    """`text` as epoch milliseconds; `now_ms` anchors relative times and `now`."""
    return parse_time_us(text, option, now_ms) // 1000


def parse_time_us(text: str, option: str, now_ms: int) -> int:
    """`text` as epoch microseconds, exactly as typed (change times are microseconds:
    `--to ...527400Z` must keep a change made at ...527001)."""
    value = text.strip()
    lowered = value.lower()
    if lowered == "now":
        return now_ms * 1000
    if _RELATIVE.match(lowered):
        back = sum(round(float(amount) * _UNIT_MS[unit]) for amount, unit in _PART.findall(lowered))
        if back > now_ms:
            raise ReplayInputError(f"{option} {text!r} is before 1970")
        return (now_ms - back) * 1000
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ReplayInputError(
            f"{option} {text!r} is not a time: give ISO 8601 with a zone "
            "(2026-11-27T21:00:00Z) or a relative time (-2h, -3d)"
        ) from None
    if moment.tzinfo is None:
        raise ReplayInputError(
            f"{option} {text!r} has no time zone: add Z or an offset (2026-11-27T21:00:00Z)"
        )
    try:
        return (moment - _EPOCH) // timedelta(microseconds=1)
    except OverflowError:
        raise ReplayInputError(f"{option} {text!r} is out of range") from None


def parse_from(text: str, now_ms: int) -> int | None:
    """`--from`: epoch ms, or None for the oldest record the source holds."""
    if text.strip().lower() in EARLIEST_WORDS:
        return None
    return parse_time(text, "--from", now_ms)


def iso_ms(ms: int) -> str:
    """Epoch ms as ISO 8601 UTC, `2026-11-27T21:00:00.123Z` (seconds only when whole)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    if ms % 1000:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_us(us: int) -> str:
    """Epoch µs as ISO 8601 UTC, with as many fractional digits as it needs."""
    if us % 1000 == 0:
        return iso_ms(us // 1000)
    moment = datetime.fromtimestamp(us // 1_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{us % 1_000_000:06d}Z"


def compact_ms(ms: int | None) -> str:
    """A time for resource names: `20261127T210000Z` (`trim-horizon` for None)."""
    if ms is None:
        return "trim-horizon"
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y%m%dT%H%M%SZ")


def human_span(ms: float) -> str:
    """A duration for people: `45 s`, `12 min`, `3.5 h`, `2 d 4 h`."""
    seconds = max(0.0, ms / 1000)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    days, rest = divmod(seconds, 86_400)
    return f"{days:.0f} d {rest / 3600:.0f} h"


def clock_text(seconds: float) -> str:
    """An ETA: `0:04:05`, `27:13:00`."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
