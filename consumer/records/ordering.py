"""Which of two changes to one item is newer, when their ApproximateCreationDateTime ties.

With MILLISECOND precision (the Kinesis destination's default) one item often changes twice in
a millisecond, and the sequence number cannot break the tie (a redelivered duplicate of the
older change has a higher one). So ties are decided by the item states the changes connect:
each takes the item from `before` (its OldImage; ABSENT for an INSERT) to `after` (its
NewImage; ABSENT for a REMOVE), named by `state_digest`.

- X follows Y when X.before == Y.after: X is the newer.
- X.after == Y.after: the same state; which one is kept does not matter.
- Otherwise (a cycle, a gap, a view without old images) the later in shard order wins and the
  tie is counted as ambiguous (`AmbiguousTies`, warned once per shard).

Across batches every sink stores with the version the state it wrote and the states that
change is known to follow (`StoredChange`), so a late duplicate of a change two or more steps
back loses too (A, B, C in one millisecond, then a copy of A: C's history holds A's state).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

log = structlog.get_logger(__name__)

ABSENT = "-"  # the state of an item that does not exist (before an INSERT, after a REMOVE)
UNKNOWN = "?"  # the stream did not carry the image (a view type without it)
_SET_TYPES = ("SS", "NS", "BS")


def _canonical(value: Any) -> Any:
    """Typed JSON with set members sorted: DynamoDB does not promise an order of set members,
    and two images of the same state must digest alike."""
    if isinstance(value, Mapping):
        if len(value) == 1:
            ((kind, inner),) = value.items()
            if kind in _SET_TYPES and isinstance(inner, list):
                return {kind: sorted(inner)}
        return {name: _canonical(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [_canonical(inner) for inner in value]
    return value


def state_digest(wire_image: Mapping[str, Any] | None) -> str:
    """A short, stable name for an item state (its typed-JSON image), ABSENT for None."""
    if wire_image is None:
        return ABSENT
    encoded = orjson.dumps(wire_image, option=orjson.OPT_SORT_KEYS)
    if b'S":[' in encoded:  # a set ("SS", "NS", "BS": a list), rare: sort its members
        encoded = orjson.dumps(_canonical(wire_image), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(encoded, digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class Transition:
    """What one change did to its item: `before` -> `after` (state digests), and its place in
    shard order (`sequence`: the sequence key, the rule of last resort)."""

    before: str
    after: str
    sequence: tuple[int, int]

    def follows(self, other: Transition) -> bool:
        return self.before != UNKNOWN and self.before == other.after and self.after != other.after


@dataclass(frozen=True, slots=True)
class TieOutcome:
    """The newest of a group of tying changes: its index in the group, the digests of the
    states it is known to follow within the group (for the stored-side check), and whether
    the records left the choice ambiguous."""

    index: int
    follows_states: frozenset[str]
    ambiguous: bool


def newest_of_ties(transitions: Sequence[Transition]) -> TieOutcome:
    """The newest of changes of one item that share one version (see the module docstring).

    The newest is a change no other change follows; if several distinct states qualify
    (a gap or a cycle), the one latest in shard order, and the outcome is ambiguous.
    """
    if not transitions:
        raise ValueError("no changes")
    candidates = [
        index
        for index, transition in enumerate(transitions)
        if not any(other.follows(transition) for other in transitions)
    ]
    afters = {transitions[index].after for index in candidates}
    ambiguous = len(candidates) > 1 and (len(afters) != 1 or UNKNOWN in afters)
    if not candidates:  # every change is followed: a cycle
        candidates = list(range(len(transitions)))
        ambiguous = True
    winner = max(candidates, key=lambda index: transitions[index].sequence)
    return TieOutcome(winner, _predecessor_states(transitions, winner), ambiguous)


def _predecessor_states(transitions: Sequence[Transition], winner: int) -> frozenset[str]:
    """The `before` states of the winner and of every change it transitively follows."""
    chosen = transitions[winner]
    states = {chosen.before} - {UNKNOWN}
    frontier = set(states)
    while frontier:
        reached = {
            t.before
            for t in transitions
            if t.after in frontier and t.before not in states and t.before != UNKNOWN
        }
        states |= reached
        frontier = reached
    states.discard(chosen.after)  # a cycle back to the winner's own state decides nothing
    return frozenset(states)


MAX_HISTORY = 32  # states kept per stored change; more changes in one tick are absurd


@dataclass(frozen=True, slots=True)
class StoredChange:
    """What a sink keeps of the change it applied, to decide a tie with a later arrival:
    the state it left (`after`), the states it follows at its version, its shard order."""

    after: str
    follows_states: frozenset[str]
    sequence: tuple[int, int]


def encode_states(states: Iterable[str]) -> str:
    """The stored form of a history: digests joined by spaces (digests hold none)."""
    return " ".join(sorted(states)[:MAX_HISTORY])


def decode_states(text: str) -> frozenset[str]:
    return frozenset(text.split()) - {UNKNOWN}


def tie_wins(
    incoming: Transition, follows_states: frozenset[str], stored: StoredChange
) -> tuple[bool, bool]:
    """Whether a change that ties with the stored one (same version) replaces it, and whether
    that was decided by the rule of last resort (ambiguous).

    `follows_states` are the states the incoming change is known to follow (its own `before`
    and, from its batch, those of the changes it follows).
    """
    if stored.after == incoming.after and incoming.after != UNKNOWN:
        return False, False  # the same state: nothing to write
    incoming_follows = stored.after in follows_states
    stored_follows = incoming.after in stored.follows_states
    if incoming_follows != stored_follows:  # one follows the other (and not both: a cycle)
        return incoming_follows, False
    return incoming.sequence > stored.sequence, True


def history_after_tie(follows_states: frozenset[str], stored: StoredChange) -> frozenset[str]:
    """The history to store for a change that replaced a tying stored one: what it follows,
    plus, when it follows the stored change, everything that one followed."""
    if stored.after in follows_states:
        return follows_states | stored.follows_states
    return follows_states


@dataclass
class AmbiguousTies:
    """Ties the records could not decide, per shard; the first per shard is warned about."""

    by_shard: dict[str, int] = field(default_factory=dict)

    def count(self, shard_id: str, sink: str) -> None:
        seen = self.by_shard.get(shard_id, 0)
        self.by_shard[shard_id] = seen + 1
        if seen == 0:
            log.warning(
                "ordering.ambiguous_tie",
                shard_id=shard_id,
                sink=sink,
                hint=(
                    "two changes of one item share an ApproximateCreationDateTime and their "
                    "images do not tell which is newer; the later in shard order was kept. "
                    "Set the Kinesis destination's precision to MICROSECOND"
                ),
            )

    @property
    def total(self) -> int:
        return sum(self.by_shard.values())


# One count per process: every sink adds to it, the metrics read it.
AMBIGUOUS_TIES = AmbiguousTies()
