"""The newest change per item key of one batch, the rule every collapsing sink writes by.

Newest is the highest `ChangeEvent.version`; changes that tie on it are decided by the item
states they connect (`consumer.records.ordering`), not by sequence number alone, because a
redelivered duplicate of the older change of a millisecond tie arrives later.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from consumer.records import ChangeEvent
from consumer.records.ordering import (
    AMBIGUOUS_TIES,
    UNKNOWN,
    StoredChange,
    Transition,
    decode_states,
    history_after_tie,
    newest_of_ties,
    tie_wins,
)

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Newest:
    """The change to write for one key: `index` in the batch, the indexes of the changes it
    supersedes, its transition, and the states it is known to follow (its own OldImage's
    and, for a tie, those of the batch's changes it follows): a stored change at the same
    version in one of these states is older than it."""

    index: int
    superseded: tuple[int, ...]
    transition: Transition
    follows_states: frozenset[str]


def newest_per_key(
    events: Sequence[ChangeEvent], key_of: Callable[[ChangeEvent], K], sink: str
) -> dict[K, Newest]:
    """Per key (by `key_of`), the newest change of `events`, in order of first appearance.

    Ambiguous ties are counted in AMBIGUOUS_TIES under the change's shard and `sink`.
    """
    groups: dict[K, list[int]] = {}
    for index, event in enumerate(events):
        groups.setdefault(key_of(event), []).append(index)
    return {key: _newest(events, indexes, sink) for key, indexes in groups.items()}


def _newest(events: Sequence[ChangeEvent], indexes: list[int], sink: str) -> Newest:
    top = max(events[index].version for index in indexes)
    tying = [index for index in indexes if events[index].version == top]
    transitions = [events[index].transition for index in tying]
    if len(tying) == 1:
        winner, chosen = tying[0], transitions[0]
        follows = frozenset({chosen.before} - {UNKNOWN})
    else:
        outcome = newest_of_ties(transitions)
        winner, chosen = tying[outcome.index], transitions[outcome.index]
        follows = outcome.follows_states
        if outcome.ambiguous:
            AMBIGUOUS_TIES.count(events[winner].position.shard_id, sink)
    superseded = tuple(index for index in indexes if index != winner)
    return Newest(winner, superseded, chosen, follows)


def item_key(event: ChangeEvent) -> tuple[tuple[str, str], ...]:
    """The change's item key as a hashable value."""
    return tuple(sorted((name, repr(value)) for name, value in event.keys.wire.items()))


def sequence_token(sequence: tuple[int, int]) -> str:
    """A shard order key as text that sorts like the numbers: the sequence number zero-padded
    to 56 digits, then the sub-sequence number to 8; "" for none (negative: not from a stream)."""
    if sequence[0] < 0:
        return ""
    return f"{sequence[0]:056d}{sequence[1]:08d}"


def stored_change(after: object, prior: object, token: object) -> StoredChange:
    """The change a sink stored, from its state, prior states and `sequence_token` (UNKNOWN
    states for one written before states were kept; a token not of that form sorts first)."""
    text = str(token or "")
    sequence = (int(text[:-8]), int(text[-8:])) if text.isdigit() and len(text) > 8 else (-1, 0)
    return StoredChange(str(after or UNKNOWN), decode_states(str(prior or "")), sequence)


def tie_history(
    incoming: Transition,
    follows_states: frozenset[str],
    stored: StoredChange,
    shard_id: str,
    sink: str,
) -> frozenset[str] | None:
    """For a change at the stored change's version: the history to store with it if it wins
    the tie, else None. Ambiguous ties are counted in AMBIGUOUS_TIES."""
    wins, ambiguous = tie_wins(incoming, follows_states, stored)
    if ambiguous:
        AMBIGUOUS_TIES.count(shard_id, sink)
    return history_after_tie(follows_states, stored) if wins else None
