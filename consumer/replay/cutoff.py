"""Where one shard's replay ends, batch by batch. Pure: no I/O.

A shard's replay ends at the first of:
- SHARD_END: the shard is closed and every record of it was read (its children continue);
- REACHED_TO: a record arrived after the window's cut-off; it and everything after it in the
  shard are left alone (the shard is *not* checkpointed at SHARD_END: it is not finished, and
  its children, which hold only later records, are never read);
- TIP: an empty batch with MillisBehindLatest = 0: nothing more has arrived.

Records within a shard arrive in sequence order, so the records to apply are always a prefix
of the batch.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from consumer.pipeline.decoders import Decoder
from consumer.records import ChangeEvent, DecodeError
from consumer.records.batch import RawRecord, ReadBatch
from consumer.replay.window import ReplayWindow


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
    """Splits `batch` at the first record that arrived after `cutoff_ms` (epoch ms)."""
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
class SkipCounter:
    """Changes read but not applied because they were made after `--to`."""

    after_to: int = 0


@dataclass
class ChangeTimeFilter:
    """Wraps a decoder so that changes made after `--to` are dropped before any sink sees
    them (decode errors pass through: they are parked as usual)."""

    decoder: Decoder
    window: ReplayWindow
    skipped: SkipCounter = field(default_factory=SkipCounter)

    def __call__(
        self, record: RawRecord, stream: str, shard_id: str
    ) -> Sequence[ChangeEvent | DecodeError]:
        results = self.decoder(record, stream, shard_id)
        kept = [
            result
            for result in results
            if isinstance(result, DecodeError) or self.window.applies(result.created_at_us)
        ]
        self.skipped.after_to += len(results) - len(kept)
        return kept
