"""Where a replay stands, shard by shard, and when it is complete. Pure: no I/O.

Every replay worker reads the same lease table, so every worker (and the progress display)
reaches the same verdict. A shard is *settled* for a replay up to `to_ms` when:
- it is finished (SHARD_END): every record of a closed shard was read;
- it is marked done for this `--to` or a later one (it reached the cut-off, or the tip);
- it was stopped by a pipeline with `on_failure = stop` (the replay then fails);
- an ancestor of it is settled without being finished: the ancestor never reaches SHARD_END
  in this replay, so its children (which hold only records after the ancestor's last one,
  all past `--to`) are never read.
The replay is complete when every shard it set out to read is settled.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class Settled(enum.StrEnum):
    FINISHED = "finished"
    DONE = "done"
    STOPPED = "stopped"
    BLOCKED = "not needed"


@dataclass(frozen=True)
class ShardStatus:
    """One shard's lease as a replay sees it.

    `records`: records applied so far (all owners together); `at_ms`: the arrival time of the
    last one; `done_to_ms`: the `--to` the shard was marked done for; `end`: why it ended
    (see `cutoff.ShardEnd`, or "stopped"); `error`: what stopped it.
    """

    shard_id: str
    parents: frozenset[str] = frozenset()
    finished: bool = False
    owner: str | None = None
    records: int = 0
    at_ms: int | None = None
    done_to_ms: int | None = None
    end: str | None = None
    error: str | None = None


STOPPED = "stopped"


@dataclass(frozen=True)
class ReplayState:
    """The lease table of a replay: its shards and the workers with a heartbeat item."""

    shards: tuple[ShardStatus, ...] = ()
    workers: frozenset[str] = frozenset()

    def shard(self, shard_id: str) -> ShardStatus | None:
        return next((s for s in self.shards if s.shard_id == shard_id), None)


def settlement(state: ReplayState, to_ms: int) -> dict[str, Settled | None]:
    """Each shard's settlement (None: still to do)."""
    by_id = {shard.shard_id: shard for shard in state.shards}
    result: dict[str, Settled | None] = {}

    def settle(shard: ShardStatus, depth: int) -> Settled | None:
        if shard.shard_id in result:
            return result[shard.shard_id]
        verdict = _own(shard, to_ms)
        if verdict is None and depth <= len(by_id):
            for parent_id in sorted(shard.parents):
                parent = by_id.get(parent_id)
                if parent is None:
                    continue  # no lease: ended before the replay's start, or cleaned up
                parent_verdict = settle(parent, depth + 1)
                if parent_verdict in (Settled.DONE, Settled.STOPPED, Settled.BLOCKED):
                    verdict = Settled.BLOCKED
                    break
        result[shard.shard_id] = verdict
        return verdict

    for shard in state.shards:
        settle(shard, 0)
    return result


def _own(shard: ShardStatus, to_ms: int) -> Settled | None:
    if shard.finished:
        return Settled.FINISHED
    if shard.end == STOPPED:
        return Settled.STOPPED
    if shard.done_to_ms is not None and shard.done_to_ms >= to_ms:
        return Settled.DONE
    return None


def outstanding(state: ReplayState, to_ms: int, expected: Iterable[str] = ()) -> list[str]:
    """Shards still to do: unsettled leases, and `expected` shards that have no lease yet."""
    verdicts = settlement(state, to_ms)
    missing = set(expected) - set(verdicts)
    return sorted(missing | {shard for shard, verdict in verdicts.items() if verdict is None})


def is_complete(state: ReplayState, to_ms: int, expected: Iterable[str] = ()) -> bool:
    """True when the table has leases and every shard is settled."""
    return bool(state.shards) and not outstanding(state, to_ms, expected)


def stopped_shards(state: ReplayState) -> Mapping[str, str]:
    """Shards a pipeline stopped (on_failure = stop), with the reason."""
    return {s.shard_id: s.error or "stopped" for s in state.shards if s.end == STOPPED}
