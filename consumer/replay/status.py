"""Where a replay stands, shard by shard: its marks on the lease table, when it is complete,
and how a run ended. Every worker reads the same lease table, so all reach the same verdict.

A shard is *settled* for a replay up to `to_ms` when it is finished (SHARD_END), marked done
for this `--to` or a later one (cut-off or tip reached), stopped by a pipeline with
`on_failure = stop` (the replay then fails), or has an ancestor settled without being
finished (its children hold only records past `--to` and are never read). The replay is
complete when every shard it set out to read is settled.

The replay adds attributes to the lease items that the lease code never writes or removes:
`replayRecords` (N, records applied by all owners, an atomic ADD), `replayAtMs` (N, the
arrival time of the last one), `replayDoneToMs` (N, the `--to` the shard was read up to),
`replayEnd` (S: `reached-to`, `tip` or `stopped`) and `replayError` (S). Every write is fenced
like a checkpoint (`leaseOwner` and `leaseCounter` must still be ours).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from botocore.exceptions import ClientError

from checkpoints import LeaseHandle
from checkpoints.model import Attr, int_attr, is_worker_key, lease_from_item, text_attr
from checkpoints.table import CONDITIONAL_FAILED
from consumer.aws.errors import error_code
from consumer.pipeline.processor import ShardPipeline
from consumer.records.batch import RawRecord


class Settled(enum.StrEnum):
    FINISHED = "finished"
    DONE = "done"
    STOPPED = "stopped"
    BLOCKED = "not needed"


# A shard whose parent is settled this way holds only records past --to: it is not read.
_BLOCKING = (Settled.DONE, Settled.STOPPED, Settled.BLOCKED)


@dataclass(frozen=True)
class ShardStatus:
    """One shard's lease as a replay sees it (the marks of the module docstring; `end` is a
    `window.ShardEnd` or "stopped")."""

    shard_id: str
    parents: frozenset[str] = frozenset()
    finished: bool = False
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

    @property
    def records(self) -> int:
        """Records read (applied, parked or skipped after --to), over all workers and runs."""
        return sum(shard.records for shard in self.shards)

    @classmethod
    def of_tallies(cls, tallies: Iterable[ShardTally], to_ms: int) -> ReplayState:
        """Shards counted where no marks are kept: done for `to_ms` once `done`."""
        return cls(
            tuple(
                ShardStatus(
                    shard_id=t.shard_id,
                    records=t.records,
                    at_ms=t.at_ms,
                    done_to_ms=to_ms if t.done else None,
                    end=t.end,
                    error=t.error,
                )
                for t in sorted(tallies, key=attrgetter("shard_id"))
            )
        )


def settlement(state: ReplayState, to_ms: int) -> dict[str, Settled | None]:
    """Each shard's settlement (None: still to do)."""
    by_id = {shard.shard_id: shard for shard in state.shards}
    result: dict[str, Settled | None] = {}

    def settle(shard: ShardStatus, depth: int) -> Settled | None:
        if shard.shard_id in result:
            return result[shard.shard_id]
        verdict = _own(shard, to_ms)
        # A parent without a lease ended before the replay's start, or was cleaned up.
        parents = (by_id[parent] for parent in sorted(shard.parents) if parent in by_id)
        if verdict is None and depth <= len(by_id) and any(
            settle(parent, depth + 1) in _BLOCKING for parent in parents
        ):
            verdict = Settled.BLOCKED
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


RECORDS = "replayRecords"
AT_MS = "replayAtMs"
DONE_TO_MS = "replayDoneToMs"
END = "replayEnd"
ERROR = "replayError"
_FENCE = "#owner = :me AND #counter = :token"


class ReplayMarks:
    """Reads and writes the replay attributes of one lease table over an aiobotocore
    DynamoDB client. Constructing one does no I/O."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    async def add_progress(self, owner: LeaseHandle, records: int, at_ms: int | None) -> bool:
        """Adds `records` applied and moves the last arrival time; False if the lease is no
        longer ours."""
        sets = {AT_MS: {"N": str(at_ms)}} if at_ms is not None else {}
        return await self._update(owner, sets, records)

    async def mark_end(
        self,
        owner: LeaseHandle,
        end: str,
        to_ms: int | None,
        records: int = 0,
        at_ms: int | None = None,
        error: str | None = None,
    ) -> bool:
        """Marks the shard ended for this replay (`to_ms` None: stopped, not done)."""
        sets: dict[str, dict[str, str]] = {END: {"S": end}}
        if to_ms is not None:
            sets[DONE_TO_MS] = {"N": str(to_ms)}
        if at_ms is not None:
            sets[AT_MS] = {"N": str(at_ms)}
        if error is not None:
            sets[ERROR] = {"S": error[:1000]}
        return await self._update(owner, sets, records)

    async def _update(
        self, owner: LeaseHandle, sets: dict[str, dict[str, str]], records: int
    ) -> bool:
        names = {"#owner": Attr.LEASE_OWNER, "#counter": Attr.LEASE_COUNTER}
        names.update({f"#{name}": name for name in sets})
        values: dict[str, Any] = {":me": {"S": owner.worker_id}, ":token": {"N": str(owner.token)}}
        values.update({f":{name}": value for name, value in sets.items()})
        clauses = ", ".join(f"#{name} = :{name}" for name in sorted(sets))
        expression = f"SET {clauses}" if clauses else ""
        if records:
            names["#records"] = RECORDS
            values[":records"] = {"N": str(records)}
            expression += " ADD #records :records"
        if not expression:
            return True
        try:
            await self._client.update_item(
                TableName=self.table_name,
                Key={Attr.LEASE_KEY: {"S": owner.lease_key}},
                UpdateExpression=expression.strip(),
                ConditionExpression=_FENCE,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error_code(error) == CONDITIONAL_FAILED:
                return False
            raise
        return True

    async def state(self) -> ReplayState:
        """Every shard's status and the workers with a heartbeat item (consistent scan)."""
        scan = self._client.get_paginator("scan")
        pages = scan.paginate(TableName=self.table_name, ConsistentRead=True)
        return state_from_items([item async for page in pages for item in page.get("Items", [])])

    async def state_if_exists(self) -> ReplayState | None:
        """`state()`, or None once the table is gone (only the last worker of a complete
        replay deletes it)."""
        try:
            return await self.state()
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return None
            raise


def state_from_items(items: list[dict[str, Any]]) -> ReplayState:
    shards: list[ShardStatus] = []
    workers: set[str] = set()
    for item in items:
        key = item.get(Attr.LEASE_KEY, {}).get("S", "")
        if is_worker_key(key):
            workers.add(str(item.get(Attr.WORKER_ID, {}).get("S", key)))
            continue
        lease = lease_from_item(item)
        shards.append(
            ShardStatus(
                shard_id=lease.shard_id,
                parents=lease.parent_shard_ids,
                finished=lease.finished,
                records=int_attr(item, RECORDS),
                at_ms=_number(item, AT_MS),
                done_to_ms=_number(item, DONE_TO_MS),
                end=text_attr(item, END),
                error=text_attr(item, ERROR),
            )
        )
    shards.sort(key=lambda shard: shard.shard_id)
    return ReplayState(tuple(shards), frozenset(workers))


def _number(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name, {}).get("N")
    return int(value) if value is not None else None


@dataclass
class ShardTally:
    """One shard's counts where no marks are kept (the archive replay, the dry runs);
    `bytes`, `changes` (to apply: made at or before --to) and `parents` are a dry run's."""

    shard_id: str
    records: int = 0
    at_ms: int | None = None
    done: bool = False
    end: str | None = None
    error: str | None = None
    bytes: int = 0
    changes: int = 0
    parents: frozenset[str] = frozenset()

    def saw(self, records: Sequence[RawRecord]) -> None:
        self.records += len(records)
        if records:
            self.at_ms = records[-1].arrival_ms or self.at_ms


@dataclass
class LocalTotals:
    """This process's own counts (a stream replay's lease table has every worker's records)."""

    records: int = 0
    changes: int = 0
    parked: int = 0
    skipped_after_to: int = 0

    def add(self, pipeline: ShardPipeline) -> None:
        self.records += pipeline.stats.records
        self.changes += pipeline.stats.changes
        self.parked += pipeline.stats.parked


@dataclass
class ReplayOutcome:
    """`complete`: every shard settled; `interrupted`: stopped by a signal before that."""

    complete: bool
    interrupted: bool
    state: ReplayState
    local: LocalTotals = field(default_factory=LocalTotals)
    lease_table_deleted: bool = False
