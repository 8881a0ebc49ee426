"""The replay window: which changes a replay applies, where reading a shard stops, the time
syntax of `--from`/`--to`, and the two ways a replay refuses to go on. Pure: no I/O.

`--from` is an *arrival* time (what AT_TIMESTAMP, ListShards' FROM_TIMESTAMP and the archive's
partitions select by); `--to` is a *change* time (a change is applied only if made at or before
it). A shard is read until the first record that arrived after `--to + grace`, for changes
made before `--to` that arrived late (docs/replay.md, "Which changes").

The time parsers raise ReplayInputError with one line naming the option.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from consumer.pipeline.decoders import Decoder
from consumer.records import ChangeEvent, DecodeError
from consumer.records.batch import RawRecord, ReadBatch


class ReplayInputError(ValueError):
    """The request is wrong (a bad time, an unknown pipeline, --to before --from...).

    The message is one line naming the option and what to do; the CLI prints it and exits 2.
    """


class ReplayError(RuntimeError):
    """The replay cannot run or finish (the stream or archive is missing, a shard stopped)."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR_MS = 3_600_000
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


def utc_datetime(ms: int) -> datetime:
    """Epoch ms as an aware UTC datetime (what boto3 takes for a timestamp)."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso_ms(ms: int) -> str:
    """Epoch ms as ISO 8601 UTC, `2026-11-27T21:00:00.123Z` (seconds only when whole)."""
    return iso_us(ms * 1000)


def iso_us(us: int) -> str:
    """Epoch µs as ISO 8601 UTC, with as many fractional digits (none, 3 or 6) as it needs."""
    seconds, fraction = divmod(us, 1_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction % 1000:
        return f"{text}.{fraction:06d}Z"
    return f"{text}.{fraction // 1000:03d}Z" if fraction else f"{text}Z"


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


DEFAULT_GRACE_MS = 60_000


@dataclass(frozen=True)
class ReplayWindow:
    """Changes that arrived at or after `from_ms` (None: the oldest the source holds) and
    were made at or before `to_ms` (both epoch ms). Constructing one checks the order."""

    from_ms: int | None
    to_ms: int
    grace_ms: int = DEFAULT_GRACE_MS
    # The microseconds of `--to` below the millisecond (change times are microseconds).
    to_extra_us: int = 0

    def __post_init__(self) -> None:
        if self.grace_ms < 0:
            raise ValueError(f"grace_ms must be >= 0, got {self.grace_ms}")
        if not 0 <= self.to_extra_us < 1000:
            raise ValueError(f"to_extra_us must be in 0..999, got {self.to_extra_us}")
        if self.from_ms is not None and self.to_ms <= self.from_ms:
            raise ValueError("the window's end must be after its start")

    @property
    def cutoff_ms(self) -> int:
        """Reading a shard stops at the first record that arrived after this."""
        return self.to_ms + self.grace_ms

    @property
    def to_us(self) -> int:
        return self.to_ms * 1000 + self.to_extra_us

    def applies(self, created_at_us: int) -> bool:
        """True for a change made at or before `--to` (microsecond change time)."""
        return created_at_us <= self.to_us

    def arrived_in(self, arrival_ms: int) -> bool:
        """True for a record whose arrival lies in [from, cutoff] (archive selection)."""
        return (self.from_ms is None or arrival_ms >= self.from_ms) and arrival_ms <= self.cutoff_ms


def window_from_input(
    from_text: str, to_text: str | None, now_ms: int, grace_ms: int = DEFAULT_GRACE_MS
) -> ReplayWindow:
    """The window for `--from`/`--to` as typed; ReplayInputError (one line) when wrong.

    No `--to` means now: the replay ends at the stream's tip as of its start, and changes
    written while it runs are left to the live service.
    """
    from_ms = parse_from(from_text, now_ms)
    if from_ms is not None and from_ms > now_ms:
        raise ReplayInputError(
            f"--from {iso_ms(from_ms)} is in the future (now is {iso_ms(now_ms)})"
        )
    to_us = now_ms * 1000 if to_text is None else parse_time_us(to_text, "--to", now_ms)
    to_ms = to_us // 1000
    if to_ms > now_ms:
        raise ReplayInputError(
            f"--to {iso_ms(to_ms)} is in the future (now is {iso_ms(now_ms)}); "
            "leave --to out to replay up to now"
        )
    if from_ms is not None and to_ms <= from_ms:
        raise ReplayInputError(f"--to {iso_ms(to_ms)} is not after --from {iso_ms(from_ms)}")
    if grace_ms < 0:
        raise ReplayInputError(f"--to-grace must be >= 0 seconds, got {grace_ms / 1000:g}")
    return ReplayWindow(from_ms, to_ms, grace_ms, to_us % 1000)


class ShardEnd(enum.StrEnum):
    SHARD_END = "shard-end"
    REACHED_TO = "reached-to"
    TIP = "tip"


@dataclass(frozen=True)
class Cut:
    """The part of a batch to apply (possibly empty) and why the shard ends, if it does."""

    batch: ReadBatch
    end: ShardEnd | None


def cut_batch(batch: ReadBatch, cutoff_ms: int) -> Cut:
    """Splits `batch` at the first record that arrived after `cutoff_ms` (epoch ms): records
    of a shard arrive in sequence order, so those to apply are a prefix. The shard ends at the
    first of SHARD_END, REACHED_TO (that record and the rest are left alone, and the shard is
    *not* checkpointed at SHARD_END, so its children are never read) and TIP (an empty batch
    with MillisBehindLatest = 0)."""
    records = batch.records
    for index, record in enumerate(records):
        if record.arrival_ms > cutoff_ms:
            kept = records[:index]
            return Cut(
                replace(
                    batch,
                    records=kept,
                    resume_after=kept[-1].sequence_number if kept else None,
                    child_shard_ids=None,  # the shard is not finished for this replay
                ),
                ShardEnd.REACHED_TO,
            )
    if batch.shard_end:
        return Cut(batch, ShardEnd.SHARD_END)
    if not records and batch.millis_behind_latest == 0:
        return Cut(batch, ShardEnd.TIP)
    return Cut(batch, None)


@dataclass
class ChangeTimeFilter:
    """Wraps a decoder so that changes made after `--to` are dropped before any sink sees
    them (decode errors pass through: they are parked as usual)."""

    decoder: Decoder
    window: ReplayWindow
    skipped_after_to: int = 0  # changes read but not applied: made after `--to`

    def __call__(
        self, record: RawRecord, stream: str, shard_id: str
    ) -> Sequence[ChangeEvent | DecodeError]:
        results = self.decoder(record, stream, shard_id)
        kept = [
            result
            for result in results
            if isinstance(result, DecodeError) or self.window.applies(result.created_at_us)
        ]
        self.skipped_after_to += len(results) - len(kept)
        return kept
