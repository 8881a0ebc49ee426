"""The replay window: which changes a replay applies, and where reading a shard stops.

Two clocks are involved, and each bound uses the one that makes it exact:

- `--from` is an *arrival* time (Kinesis ApproximateArrivalTimestamp): it is what
  AT_TIMESTAMP iterators and ListShards' FROM_TIMESTAMP filter select by, and what the audit
  archive is partitioned by.
- `--to` is a *change* time (ApproximateCreationDateTime, the version sinks keep the newest
  of): a change is applied only if it was made at or before `--to`, so the rebuilt state is
  exactly the state as of `--to`.

A change arrives shortly after it is made (well under a second, usually; later when the
destination retries), so a shard is read until the first record that *arrived* after
`--to + grace`: changes made before `--to` that arrived a little after it are still applied,
and the ones made after `--to` in that grace span are read but skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from consumer.replay.errors import ReplayInputError
from consumer.replay.times import iso_ms, parse_from, parse_time_us

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
