"""A difference counts only once it has outlived the consumer's lag.

A difference seen at time t may be a change the consumer has not applied yet. It is looked at
again once `wait_s` (at least the consumer's lag) has passed since it was seen: the source item
is read again (consistent), then the sink's copy. Then:

- equal now: it was lag, not a difference (dropped);
- still different and the source item is the state seen before: confirmed, with its kind now;
- the source item changed in between: seen anew (state and time), looked at next round.

After `rounds` rounds, items that kept changing are `unsettled`: reported, not counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumer.verify.compare import canonical_item
from consumer.verify.keys import KeyRef, WireItem
from consumer.verify.model import Kind
from consumer.verify.sides import SinkSide

SourceReader = Callable[[Sequence[KeyRef]], Awaitable[dict[str, WireItem]]]


def state_of(item: Mapping[str, Any] | None) -> int | None:
    """A digest of the source item's state (None: absent), compared within this process."""
    return None if item is None else hash(canonical_item(item))


def classify(side: SinkSide, source: WireItem | None, copy: Any | None) -> Kind:
    if source is None:
        return Kind.EQUAL if copy is None else Kind.EXTRA
    if copy is None:
        return Kind.MISSING
    return Kind.EQUAL if side.same(source, copy) else Kind.STALE


@dataclass
class Candidate:
    pipeline: str
    ref: KeyRef
    kind: Kind
    state: int | None
    seen_at: float
    first_kind: Kind = field(init=False)  # as first seen (EXTRA: the table did not hold it then)

    def __post_init__(self) -> None:
        self.first_kind = self.kind


@dataclass
class Settled:
    confirmed: list[Candidate]
    unsettled: list[Candidate]


async def observe(
    refs: Sequence[KeyRef], side: SinkSide, read_source: SourceReader
) -> list[tuple[KeyRef, Kind, int | None]]:
    """Source first, then the sink: a change landing in between shows as a difference that
    the re-check resolves, never as a false equality."""
    sources = await read_source(refs)
    copies = await side.fetch(refs)
    return [
        (
            ref,
            classify(side, sources.get(ref.doc_id), copies.get(ref.doc_id)),
            state_of(sources.get(ref.doc_id)),
        )
        for ref in refs
    ]


async def settle(
    candidates: Sequence[Candidate],
    sides: Mapping[str, SinkSide],
    read_source: SourceReader,
    wait_s: float,
    rounds: int = 3,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Settled:
    pending = list(candidates)
    confirmed: list[Candidate] = []
    for _ in range(rounds):
        if not pending:
            break
        due = max(candidate.seen_at for candidate in pending) + wait_s
        await sleep(max(0.0, due - clock()))
        following: list[Candidate] = []
        for pipeline, side in sides.items():
            mine = [c for c in pending if c.pipeline == pipeline]
            if not mine:
                continue
            seen = await observe([c.ref for c in mine], side, read_source)
            now = clock()
            for candidate, (_, kind, state) in zip(mine, seen, strict=True):
                if kind is Kind.EQUAL:
                    continue
                if state == candidate.state:
                    candidate.kind = kind
                    confirmed.append(candidate)
                else:
                    candidate.kind, candidate.state, candidate.seen_at = kind, state, now
                    following.append(candidate)
        pending = following
    return Settled(confirmed, pending)
