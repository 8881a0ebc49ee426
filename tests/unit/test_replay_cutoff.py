"""Where a shard's replay ends: the cut-off by arrival time, the tip, SHARD_END; and changes
made after --to never reach a sink."""

from __future__ import annotations

import orjson

from consumer.pipeline.decoders import decode_kinesis
from consumer.records import ChangeEvent, DecodeError
from consumer.records.batch import RawRecord, ReadBatch
from consumer.replay.window import ChangeTimeFilter, ReplayWindow, ShardEnd, cut_batch
from tests.change_factory import destination_record

SHARD = "shardId-000000000000"


def record(sequence: int, arrival_ms: int, created_us: int = 1) -> RawRecord:
    data = orjson.dumps(destination_record("INSERT", f"k{sequence}", created_us, new={}))
    return RawRecord(data, str(sequence), arrival_ms, "pk")


def batch(
    *arrivals: int, behind: int | None = 1000, children: tuple[str, ...] | None = None
) -> ReadBatch:
    records = [record(n + 1, arrival) for n, arrival in enumerate(arrivals)]
    resume = records[-1].sequence_number if records else None
    return ReadBatch(SHARD, records, behind, resume, children)


def test_a_batch_within_the_window_is_applied_whole() -> None:
    cut = cut_batch(batch(100, 200, 300), cutoff_ms=300)
    assert cut.end is None and len(cut.batch.records) == 3


def test_the_first_record_after_the_cutoff_ends_the_shard_and_nothing_after_it_applies() -> None:
    cut = cut_batch(batch(100, 200, 301, 250, children=("c1", "c2")), cutoff_ms=300)
    assert cut.end is ShardEnd.REACHED_TO
    assert [r.sequence_number for r in cut.batch.records] == ["1", "2"]
    assert cut.batch.resume_after == "2"
    assert not cut.batch.shard_end  # not finished: its children are never read


def test_a_batch_entirely_after_the_cutoff_applies_nothing() -> None:
    cut = cut_batch(batch(400, 500), cutoff_ms=300)
    assert cut.end is ShardEnd.REACHED_TO and list(cut.batch.records) == []


def test_shard_end_within_the_window_finishes_the_shard() -> None:
    cut = cut_batch(batch(100, children=("c1",)), cutoff_ms=300)
    assert cut.end is ShardEnd.SHARD_END and cut.batch.child_shard_ids == ("c1",)


def test_the_tip_is_an_empty_batch_with_nothing_behind() -> None:
    assert cut_batch(batch(behind=0), 300).end is ShardEnd.TIP
    assert cut_batch(batch(behind=5000), 300).end is None  # sparse shard, catching up
    assert cut_batch(batch(100, behind=0), 300).end is None  # read once more to be sure


def test_changes_made_after_to_are_dropped_before_the_sinks() -> None:
    window = ReplayWindow(from_ms=None, to_ms=2_000)
    decoder = ChangeTimeFilter(decode_kinesis, window)
    made_before = RawRecord(
        orjson.dumps(destination_record("INSERT", "a", 2_000_000, new={})), "1", 2_500, "pk"
    )
    made_after = RawRecord(
        orjson.dumps(destination_record("INSERT", "b", 2_000_001, new={})), "2", 2_600, "pk"
    )
    bad = RawRecord(b"not json", "3", 2_700, "pk")
    assert [type(r) for r in decoder(made_before, "s", SHARD)] == [ChangeEvent]
    assert decoder(made_after, "s", SHARD) == []
    assert [type(r) for r in decoder(bad, "s", SHARD)] == [DecodeError]  # still parked
    assert decoder.skipped_after_to == 1
