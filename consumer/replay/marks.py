"""A replay's own attributes on its lease items: progress and "done up to --to".

The lease table of a replay is an ordinary lease table (see `checkpoints`); the replay adds
attributes that the lease code never writes and never removes (its updates SET and REMOVE
named attributes only):

- `replayRecords` (N): records applied so far, over all owners (an atomic ADD);
- `replayAtMs` (N): the arrival time of the last record applied;
- `replayDoneToMs` (N): the shard was read up to this `--to` (cut-off or tip reached);
- `replayEnd` (S): why it ended (`reached-to`, `tip`, or `stopped`); `replayError` (S).

Every write is fenced like a checkpoint (`leaseOwner` and `leaseCounter` must still be ours),
so a worker that lost a shard can neither mark it done nor move its progress.
"""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import ClientError

from checkpoints.model import Attr, is_worker_key, lease_from_item
from checkpoints.retry import error_code
from checkpoints.table import CONDITIONAL_FAILED
from consumer.replay.status import ReplayState, ShardStatus

RECORDS = "replayRecords"
AT_MS = "replayAtMs"
DONE_TO_MS = "replayDoneToMs"
END = "replayEnd"
ERROR = "replayError"
_FENCE = "#owner = :me AND #counter = :token"


class LeaseOwner(Protocol):
    """What identifies one holding of a lease (a `checkpoints.LeaseHandle` is one)."""

    @property
    def lease_key(self) -> str: ...

    @property
    def worker_id(self) -> str: ...

    @property
    def token(self) -> int: ...


class ReplayMarks:
    """Reads and writes the replay attributes of one lease table over an aiobotocore
    DynamoDB client. Constructing one does no I/O."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name
        self.writes = 0

    async def add_progress(self, owner: LeaseOwner, records: int, at_ms: int | None) -> bool:
        """Adds `records` applied and moves the last arrival time; False if the lease is no
        longer ours."""
        sets = {AT_MS: {"N": str(at_ms)}} if at_ms is not None else {}
        return await self._update(owner, sets, records)

    async def mark_end(
        self,
        owner: LeaseOwner,
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
        self, owner: LeaseOwner, sets: dict[str, dict[str, str]], records: int
    ) -> bool:
        names = {"#owner": Attr.LEASE_OWNER, "#counter": Attr.LEASE_COUNTER}
        values: dict[str, Any] = {":me": {"S": owner.worker_id}, ":token": {"N": str(owner.token)}}
        clauses = []
        for index, (name, value) in enumerate(sorted(sets.items())):
            names[f"#a{index}"] = name
            values[f":a{index}"] = value
            clauses.append(f"#a{index} = :a{index}")
        expression = f"SET {', '.join(clauses)}" if clauses else ""
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
        self.writes += 1
        return True

    async def state(self) -> ReplayState:
        """Every shard's status and the workers with a heartbeat item (consistent scan)."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True}
        while True:
            page = await self._client.scan(**params)
            items.extend(page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                break
            params["ExclusiveStartKey"] = start
        return state_from_items(items)


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
                owner=lease.owner,
                records=_number(item, RECORDS) or 0,
                at_ms=_number(item, AT_MS),
                done_to_ms=_number(item, DONE_TO_MS),
                end=item.get(END, {}).get("S"),
                error=item.get(ERROR, {}).get("S"),
            )
        )
    shards.sort(key=lambda shard: shard.shard_id)
    return ReplayState(tuple(shards), frozenset(workers))


def _number(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name, {}).get("N")
    return int(value) if value is not None else None
