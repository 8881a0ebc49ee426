"""What verify finds: per pipeline, how many items are equal, missing, stale or extra, and the
first keys of each kind (keys only: item contents never leave the process)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

FIRST_KEYS = 10  # keys kept per kind and pipeline for the report


class Kind(enum.StrEnum):
    EQUAL = "equal"
    MISSING = "missing"  # in the table, absent from the sink (or a tombstone there)
    STALE = "stale"  # in both, the sink's copy differs
    EXTRA = "extra"  # live in the sink, absent from the table (never there, or deleted)


DIFFERENCES = (Kind.MISSING, Kind.STALE, Kind.EXTRA)


class VerifyError(RuntimeError):
    """Verify cannot run as asked (bad input, a missing resource); the message is one line."""


@dataclass
class PipelineTally:
    """One pipeline's counts. `unsettled`: differences on items that kept changing through
    every re-check (neither counted as equal nor as a difference). `not_compared`: items the
    pipeline's filters leave out."""

    pipeline: str
    limit: int = FIRST_KEYS
    counts: dict[Kind, int] = field(default_factory=lambda: dict.fromkeys(Kind, 0))
    first: dict[Kind, list[str]] = field(default_factory=lambda: {kind: [] for kind in DIFFERENCES})
    unsettled: int = 0
    not_compared: int = 0
    repaired: int = 0
    not_repaired: list[str] = field(default_factory=list)

    def add(self, kind: Kind, key_text: str) -> None:
        self.counts[kind] += 1
        keys = self.first.get(kind)
        if keys is not None and len(keys) < self.limit:
            keys.append(key_text)

    @property
    def differences(self) -> int:
        return sum(self.counts[kind] for kind in DIFFERENCES)


@dataclass
class VerifyReport:
    table: str
    snapshot_id: str
    pipelines: dict[str, PipelineTally]
    items_read: int = 0
    sampled: float = 1.0
    recheck_after_s: float = 0.0
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    # After --repair: the differences that remain when the repaired keys are verified again.
    after_repair: dict[str, int] | None = None

    @property
    def differences(self) -> int:
        return sum(tally.differences for tally in self.pipelines.values())

    @property
    def remaining(self) -> int:
        """Differences left at the end (after a repair, those the repair did not fix)."""
        if self.after_repair is not None:
            return sum(self.after_repair.values())
        return self.differences
