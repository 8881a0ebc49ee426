"""Ties in ApproximateCreationDateTime (issue 14.4): which change of one item is newer when two
share a millisecond, decided from the images, not from the sequence number alone.

The destination's default precision is MILLISECOND ("ApproximateCreationDateTimePrecision ...
MILLISECOND or MICROSECOND", Kinesis Data Streams for DynamoDB docs, "Change data capture for
Kinesis Data Streams with DynamoDB"); records "may appear in a different order" and
"duplicate records might occasionally appear in the stream" (same page), so a redelivered
copy of the older change of a tie carries a higher sequence number than the newer one.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from consumer.pipeline.newest import newest_per_key
from consumer.records import ChangeEvent
from consumer.records.ordering import (
    ABSENT,
    AMBIGUOUS_TIES,
    StoredChange,
    Transition,
    newest_of_ties,
    state_digest,
    tie_wins,
)
from tests.change_factory import change

MS = 1_700_000_000_123  # one millisecond, MILLISECOND precision


def step(
    name: str, before: int | None, after: int | None, sequence: int, shard: str = "shard-0"
) -> ChangeEvent:
    new = {"qty": {"N": str(after)}} if after is not None else None
    old = {"qty": {"N": str(before)}} if before is not None else None
    return change(
        name, "k", MS, new=new, old=old, sequence=sequence, precision="MILLISECOND", shard_id=shard
    )


def chain_with_late_duplicates() -> list[ChangeEvent]:
    """INSERT 1, MODIFY 1->2, MODIFY 2->3 in one millisecond, then copies of the first two
    redelivered after them (higher sequence numbers)."""
    a = step("INSERT", None, 1, 10)
    b = step("MODIFY", 1, 2, 11)
    c = step("MODIFY", 2, 3, 12)
    return [a, b, c, step("INSERT", None, 1, 13), step("MODIFY", 1, 2, 14)]


def qty(event: ChangeEvent) -> Any:
    assert event.new_image is not None
    return event.new_image.wire["qty"]


@pytest.mark.parametrize("order", list(itertools.permutations(range(5))))
def test_the_newest_of_a_millisecond_chain_wins_in_any_order_within_a_batch(
    order: tuple[int, ...],
) -> None:
    events = chain_with_late_duplicates()
    batch = [events[index] for index in order]
    (newest,) = newest_per_key(batch, lambda e: "k", "test").values()
    assert qty(batch[newest.index]) == {"N": "3"}
    assert len(newest.superseded) == 4


def test_sequence_order_alone_would_pick_the_late_duplicate() -> None:
    """The reason for all this: by (time, sequence number) the copy of MODIFY 1->2 wins."""
    events = chain_with_late_duplicates()
    assert qty(max(events, key=lambda e: (e.created_at_us, e.position.sequence_key))) == {"N": "2"}


def test_equal_images_are_the_same_state_and_not_ambiguous() -> None:
    first = step("MODIFY", 1, 2, 1)
    same = step("MODIFY", 1, 2, 2)
    outcome = newest_of_ties([first.transition, same.transition])
    assert not outcome.ambiguous


def test_a_cycle_is_ambiguous_and_decided_by_shard_order() -> None:
    there = step("MODIFY", 1, 2, 1)
    back = step("MODIFY", 2, 1, 2)
    outcome = newest_of_ties([there.transition, back.transition])
    assert outcome.ambiguous and outcome.index == 1


def test_a_gap_is_ambiguous() -> None:
    first = step("MODIFY", 1, 2, 1)
    third = step("MODIFY", 3, 4, 2)  # 2->3 is missing
    assert newest_of_ties([first.transition, third.transition]).ambiguous


def test_remove_then_insert_in_one_millisecond() -> None:
    removed = step("REMOVE", 1, None, 5)
    inserted = step("INSERT", None, 7, 4)  # arrived first: a reordering
    assert removed.transition.after == ABSENT == inserted.transition.before
    outcome = newest_of_ties([removed.transition, inserted.transition])
    assert outcome.index == 1 and not outcome.ambiguous


def test_set_member_order_does_not_change_the_digest() -> None:
    one = {"pk": {"S": "k"}, "tags": {"SS": ["a", "b"]}}
    other = {"pk": {"S": "k"}, "tags": {"SS": ["b", "a"]}}
    assert state_digest(one) == state_digest(other)
    assert state_digest(one) != state_digest({"pk": {"S": "k"}, "tags": {"SS": ["a"]}})


def test_a_stored_change_beats_a_late_copy_of_its_ancestors() -> None:
    a, b, c, late_a, late_b = chain_with_late_duplicates()
    stored = StoredChange(
        c.transition.after,
        frozenset({a.transition.before, b.transition.before, c.transition.before}),
        (12, 0),
    )
    for late in (late_a, late_b):
        wins, ambiguous = tie_wins(late.transition, frozenset({late.transition.before}), stored)
        assert (wins, ambiguous) == (False, False)


def test_a_change_that_follows_the_stored_one_wins_whatever_its_sequence() -> None:
    stored = StoredChange("s1", frozenset({"s0"}), (99, 0))
    incoming = Transition("s1", "s2", (1, 0))
    assert tie_wins(incoming, frozenset({"s1"}), stored) == (True, False)


def test_ambiguous_ties_are_counted_and_warned_once_per_shard(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = AMBIGUOUS_TIES.total
    for sequence in (1, 3):
        batch = [
            step("MODIFY", 1, 2, sequence, "shard-warned"),
            step("MODIFY", 5, 6, sequence + 1, "shard-warned"),
        ]
        newest_per_key(batch, lambda e: "k", "test")
    assert AMBIGUOUS_TIES.total == before + 2
    assert AMBIGUOUS_TIES.by_shard["shard-warned"] == 2
    assert capsys.readouterr().out.count("ordering.ambiguous_tie") == 1
