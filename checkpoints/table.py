"""The DynamoDB lease table: every read and write of leases, checkpoints and heartbeats.

Every ownership change and every checkpoint is a conditional write on (leaseOwner,
leaseCounter); `leaseCounter`, the fencing token, grows by one on every ownership change, never
on a checkpoint. A write retried after an ambiguous failure (timeout, 5xx) may already have
been applied: it reads `ALL_OLD` on a failed condition to recognise its own earlier success.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.exceptions import ClientError

from checkpoints.errors import LeaseLost, LeaseTableMissing
from checkpoints.model import (
    Attr,
    AttributeValue,
    Checkpoint,
    Item,
    Lease,
    TableSnapshot,
    lease_from_item,
    lease_to_item,
    n,
    s,
    snapshot_from_items,
    ss,
    worker_key,
)
from checkpoints.retry import Clock, RetryPolicy, RetryStats, call_with_retry, error_code

CONDITIONAL_FAILED = "ConditionalCheckFailedException"
# Checkpoint writes are application-driven; the benchmark reports them apart from the
# coordination writes (heartbeats and ownership changes) that KCL's renewals compare with.
CHECKPOINT_KINDS = frozenset({"checkpoint", "shard_end"})

# Lease-table calls must answer quickly: a heartbeat stuck for the botocore default (60 s)
# would outlive the local expiry. Our own retry loop replaces botocore's.
_TABLE_CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"total_max_attempts": 1},
    max_pool_connections=64,
)


def lease_table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable arguments of a lease table (infra/ renders the same definition)."""
    return {
        "TableName": table_name,
        "AttributeDefinitions": [{"AttributeName": Attr.LEASE_KEY, "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": Attr.LEASE_KEY, "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


@dataclass
class TableStats:
    """What the table did: billed writes per kind (a failed conditional write is billed too),
    conditional failures, read units and retries. Read by the benchmark and telemetry."""

    writes: Counter[str] = field(default_factory=Counter)
    conditional_failures: Counter[str] = field(default_factory=Counter)
    # Estimated from item sizes (strongly consistent: 4 KB per unit per page): emulators do
    # not report consumed capacity.
    estimated_read_units: int = 0
    retry: RetryStats = field(default_factory=RetryStats)

    @property
    def coordination_writes(self) -> int:
        """Heartbeats, ownership changes, lease creation and clean-up: all but checkpoints."""
        return sum(v for k, v in self.writes.items() if k not in CHECKPOINT_KINDS)

    @property
    def checkpoint_writes(self) -> int:
        return sum(v for k, v in self.writes.items() if k in CHECKPOINT_KINDS)


class FenceOutcome(StrEnum):
    FENCED = "fenced"  # we declared it dead now: its leases may be taken
    ALREADY_FENCED = "already_fenced"  # someone else did: its leases may be taken too
    ALIVE = "alive"  # its heartbeat moved on: it is alive, take nothing
    GONE = "gone"  # it has no heartbeat item

    @property
    def dead(self) -> bool:
        return self in (FenceOutcome.FENCED, FenceOutcome.ALREADY_FENCED)


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    item: Item | None


_NAME = re.compile(r"#(\w+)")
_VALUE = re.compile(r":(\w+)")


def item_size(item: Item) -> int:
    """Approximately DynamoDB's item size: attribute names plus values, in bytes."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        for kind, data in value.items():
            if kind in ("SS", "NS"):
                size += sum(len(str(v).encode()) for v in data)
            else:
                size += len(str(data).encode())
    return size


class ClientFactory(Protocol):
    """Makes aiobotocore clients, like the service's `consumer.aws.AwsEndpoints`."""

    def client_kwargs(self, service: Literal["dynamodb"]) -> dict[str, Any]: ...

    def aio_session(self) -> AioSession: ...


def _move_to(
    checkpoint: Checkpoint, *sets: str, removes: tuple[str, ...] = ()
) -> tuple[str, dict[str, AttributeValue]]:
    """The update that records `checkpoint` (clearing any pending one) plus `sets` and
    `removes`, and its values (:cp, :sub, :zero, :ts)."""
    set_list = [
        "#checkpoint = :cp",
        "#checkpointSubSequenceNumber = :sub",
        *sets,
        "#ownerSwitchesSinceCheckpoint = :zero",
    ]
    remove_list = [*removes, "#pendingCheckpoint", "#pendingCheckpointSubSequenceNumber",
                   "#pendingCheckpointTimestamp"]
    if checkpoint.timestamp_ms is not None:
        set_list.append("#checkpointTimestamp = :ts")
    else:
        remove_list.append("#checkpointTimestamp")
    values = {
        ":cp": s(checkpoint.stored_value),
        ":sub": n(checkpoint.sub_sequence_number),
        ":zero": n(0),
        ":ts": n(checkpoint.timestamp_ms or 0),
    }
    return f"SET {', '.join(set_list)} REMOVE {', '.join(remove_list)}", values


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class LeaseTable:
    """Typed operations on one lease table over an aiobotocore DynamoDB client.

    Construct with a client (tests) or use `LeaseTable.open(clients, name)`. Methods that
    change ownership return the new lease, or None when the condition failed (someone else
    changed the lease first); checkpoint methods raise `LeaseLost` instead.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        retry: RetryPolicy | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._client = client
        self.name = table_name
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self.stats = TableStats()

    @classmethod
    @asynccontextmanager
    async def open(
        cls, clients: ClientFactory, table_name: str, retry: RetryPolicy | None = None
    ) -> AsyncIterator[LeaseTable]:
        kwargs = clients.client_kwargs("dynamodb")
        kwargs["config"] = kwargs["config"].merge(_TABLE_CLIENT_CONFIG)
        async with clients.aio_session().create_client("dynamodb", **kwargs) as client:
            yield cls(client, table_name, retry)

    async def _call(self, method: str, params: Mapping[str, Any], **retry_kw: Any) -> Any:
        function = getattr(self._client, method)
        return await call_with_retry(
            lambda: function(**params), self._retry, self.stats.retry, clock=self._clock, **retry_kw
        )

    # --- the table itself -----------------------------------------------------------------

    async def exists(self) -> bool:
        try:
            await self._call("describe_table", {"TableName": self.name})
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return False
            raise
        return True

    async def create_if_missing(self, timeout_s: float = 120.0) -> bool:
        """Creates the table (on-demand) unless it exists; waits until ACTIVE. True if created."""
        created = False
        try:
            await self._call("create_table", lease_table_definition(self.name))
            created = True
        except ClientError as error:
            if error_code(error) != "ResourceInUseException":  # exists or being created
                raise
        deadline = self._clock() + timeout_s
        while True:
            description = await self._call("describe_table", {"TableName": self.name})
            if description["Table"]["TableStatus"] == "ACTIVE":
                return created
            if self._clock() > deadline:
                raise LeaseTableMissing(f"lease table {self.name} did not become ACTIVE")
            await asyncio.sleep(1.0)

    async def scan(self) -> TableSnapshot:
        """All leases and heartbeats, strongly consistent, every page."""
        items: list[Item] = []
        params: dict[str, Any] = {"TableName": self.name, "ConsistentRead": True}
        while True:
            try:
                page = await self._call("scan", params)
            except ClientError as error:
                if error_code(error) == "ResourceNotFoundException":
                    raise LeaseTableMissing(f"lease table {self.name} does not exist") from error
                raise
            page_items = page.get("Items", [])
            items.extend(page_items)
            self.stats.estimated_read_units += max(1, -(-sum(map(item_size, page_items)) // 4096))
            start = page.get("LastEvaluatedKey")
            if not start:
                break
            params["ExclusiveStartKey"] = start
        return snapshot_from_items(items)

    # --- generic writes -------------------------------------------------------------------

    def _key(self, key: str) -> dict[str, Any]:
        return {"TableName": self.name, "Key": {Attr.LEASE_KEY: s(key)}}

    def _count(self, kind: str, ok: bool) -> None:
        self.stats.writes[kind] += 1
        if not ok:
            self.stats.conditional_failures[kind] += 1

    async def _write(
        self,
        kind: str,
        method: str,
        params: dict[str, Any],
        values: Mapping[str, AttributeValue] | None = None,
        *,
        resolve: Callable[[Item], bool] | None = None,
        deadline: float | None = None,
    ) -> _Outcome:
        """One PutItem, DeleteItem or UpdateItem whose failed condition is an answer (not ok),
        not an error; the names (#x) and `values` (:x) its expressions use are filled in.
        `resolve(old_item)` decides, after a retried attempt failed its condition, whether the
        item shows our own earlier attempt succeeded."""
        text = f"{params.get('UpdateExpression', '')} {params.get('ConditionExpression', '')}"
        names = {f"#{name}": name for name in _NAME.findall(text)}
        if names:
            params["ExpressionAttributeNames"] = names
        used = {f":{name}" for name in _VALUE.findall(text)}
        if used and values:
            params["ExpressionAttributeValues"] = {k: v for k, v in values.items() if k in used}
        retried = False

        def note_retry(_error: BaseException) -> None:
            nonlocal retried
            retried = True

        try:
            response = await self._call(method, params, on_retry=note_retry, deadline=deadline)
        except ClientError as error:
            if error_code(error) != CONDITIONAL_FAILED:
                raise
            old: Item | None = error.response.get("Item")
            ok = retried and resolve is not None and old is not None and resolve(old)
            self._count(kind, ok)
            return _Outcome(ok, old)
        self._count(kind, True)
        return _Outcome(True, response.get("Attributes"))

    async def _update(
        self,
        kind: str,
        key: str,
        update: str,
        condition: str | None,
        values: Mapping[str, AttributeValue],
        *,
        return_new: bool = False,
        resolve: Callable[[Item], bool] | None = None,
        deadline: float | None = None,
    ) -> _Outcome:
        """One conditional UpdateItem (see `_write`)."""
        params = self._key(key)
        params["UpdateExpression"] = update
        params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if condition:
            params["ConditionExpression"] = condition
        if return_new:
            params["ReturnValues"] = "ALL_NEW"
        return await self._write(
            kind, "update_item", params, values, resolve=resolve, deadline=deadline
        )

    async def _change_owner(
        self,
        kind: str,
        key: str,
        expect_owner: str | None,
        expect_counter: int,
        new_owner: str | None,
        *,
        expect_handoff_to: str | None = None,
        count_switch: bool = True,
    ) -> Lease | None:
        condition = (
            "attribute_not_exists(#leaseOwner)" if expect_owner is None else "#leaseOwner = :owner"
        ) + " AND #leaseCounter = :counter"
        if expect_handoff_to is not None:
            condition += " AND #handoffTo = :requester"
        sets = ["#leaseCounter = :next"]
        removes = ["#handoffTo"]
        if new_owner is None:
            removes.append("#leaseOwner")
        else:
            sets.append("#leaseOwner = :new")
        if count_switch:
            sets.append(
                "#ownerSwitchesSinceCheckpoint = "
                "if_not_exists(#ownerSwitchesSinceCheckpoint, :zero) + :one"
            )
        update = f"SET {', '.join(sets)} REMOVE {', '.join(removes)}"
        values = {
            ":owner": s(expect_owner or ""),
            ":counter": n(expect_counter),
            ":next": n(expect_counter + 1),
            ":new": s(new_owner or ""),
            ":requester": s(expect_handoff_to or ""),
            ":zero": n(0),
            ":one": n(1),
        }

        def resolve(item: Item) -> bool:
            lease = lease_from_item(item)
            return lease.owner == new_owner and lease.counter == expect_counter + 1

        outcome = await self._update(
            kind, key, update, condition, values, return_new=True, resolve=resolve
        )
        if not outcome.ok or outcome.item is None:
            return None
        return lease_from_item(outcome.item)

    # --- ownership --------------------------------------------------------------------------

    async def take(
        self, key: str, expect_owner: str | None, expect_counter: int, me: str
    ) -> Lease | None:
        """Takes an unowned lease or one whose owner is dead (fenced or, for owners without a
        heartbeat item, expired). Clears any pending handoff request."""
        return await self._change_owner("take", key, expect_owner, expect_counter, me)

    async def claim(self, key: str, me: str, counter: int) -> Lease | None:
        """Starts working on a lease the table already shows as ours (handed to us, or ours
        from before a restart or a lapse): a new fencing token, so that nobody who judged an
        earlier incarnation of us dead can still take it on the old token."""
        return await self._change_owner("claim", key, me, counter, me, count_switch=False)

    async def force_steal(self, key: str, owner: str, counter: int, me: str) -> Lease | None:
        """Takes a lease from a live owner that did not complete our handoff request in time."""
        return await self._change_owner(
            "force_steal", key, owner, counter, me, expect_handoff_to=me
        )

    async def transfer(
        self, key: str, me: str, token: int, to: str | None, *, requested_by: str | None = None
    ) -> bool:
        """Hands our lease to `to` (None: release it to nobody). With `requested_by`, only if
        that worker's handoff request is still on the lease."""
        kind = "release" if to is None else "transfer"
        lease = await self._change_owner(kind, key, me, token, to, expect_handoff_to=requested_by)
        return lease is not None

    async def request_handoff(self, key: str, owner: str, counter: int, me: str) -> bool:
        """Asks the owner to hand this lease to us (a planned move: no duplicates)."""
        outcome = await self._update(
            "request_handoff",
            key,
            "SET #handoffTo = :me",
            "#leaseOwner = :owner AND #leaseCounter = :counter"
            " AND attribute_not_exists(#handoffTo)",
            {":me": s(me), ":owner": s(owner), ":counter": n(counter)},
            resolve=lambda item: lease_from_item(item).handoff_to == me,
        )
        return outcome.ok

    async def decline_handoff(self, key: str, me: str, token: int, requester: str) -> bool:
        outcome = await self._update(
            "decline_handoff",
            key,
            "REMOVE #handoffTo",
            "#leaseOwner = :me AND #leaseCounter = :counter AND #handoffTo = :requester",
            {":me": s(me), ":counter": n(token), ":requester": s(requester)},
            resolve=lambda item: lease_from_item(item).handoff_to is None,
        )
        return outcome.ok

    # --- checkpoints (fenced by owner and token) --------------------------------------------

    async def checkpoint(self, key: str, me: str, token: int, checkpoint: Checkpoint) -> None:
        """Records `checkpoint` and clears any pending one. Raises `LeaseLost` when the lease is
        no longer (me, token). Idempotent, so a retried write is harmless."""
        update, values = _move_to(checkpoint)
        outcome = await self._update(
            "checkpoint",
            key,
            update,
            "#leaseOwner = :me AND #leaseCounter = :counter",
            {**values, ":me": s(me), ":counter": n(token)},
        )
        if not outcome.ok:
            raise LeaseLost(key, "the lease table refused the checkpoint (owner or token changed)")

    async def finish_shard(
        self, key: str, me: str, token: int, child_shard_ids: Iterable[str] = ()
    ) -> None:
        """Checkpoints SHARD_END and gives the lease up in one write: a finished lease has no
        owner, so its children become takeable (invariant 4)."""
        update, values = _move_to(
            Checkpoint.shard_end(), "#leaseCounter = :next", removes=("#leaseOwner", "#handoffTo")
        )
        children = sorted(child_shard_ids)
        if children:
            update += " ADD #childShardIds :children"
            values[":children"] = ss(children)

        def resolve(item: Item) -> bool:
            lease = lease_from_item(item)
            return lease.finished and lease.counter == token + 1

        outcome = await self._update(
            "shard_end",
            key,
            update,
            "#leaseOwner = :me AND #leaseCounter = :counter",
            {**values, ":next": n(token + 1), ":me": s(me), ":counter": n(token)},
            resolve=resolve,
        )
        if not outcome.ok:
            raise LeaseLost(key, "the lease table refused SHARD_END (owner or token changed)")

    # --- lease life cycle -------------------------------------------------------------------

    async def create_lease(self, lease: Lease, *, overwrite: bool = False) -> bool:
        """Puts a new lease; False if one with this key exists (unless `overwrite`)."""
        params: dict[str, Any] = {"TableName": self.name, "Item": lease_to_item(lease)}
        if not overwrite:
            params["ConditionExpression"] = "attribute_not_exists(#leaseKey)"
        return (await self._write("create_lease", "put_item", params)).ok

    async def add_children(self, key: str, child_shard_ids: Iterable[str]) -> bool:
        children = sorted(child_shard_ids)
        if not children:
            return True
        outcome = await self._update(
            "add_children",
            key,
            "ADD #childShardIds :children",
            "attribute_exists(#leaseKey)",
            {":children": ss(children)},
        )
        return outcome.ok

    async def delete_finished_lease(self, key: str) -> bool:
        """Deletes a lease only if it is at SHARD_END."""
        params = {**self._key(key), "ConditionExpression": "#checkpoint = :end"}
        values = {":end": s(Checkpoint.shard_end().stored_value)}
        return (await self._write("delete_lease", "delete_item", params, values)).ok

    async def reset_lease(self, key: str, expect_counter: int, checkpoint: Checkpoint) -> bool:
        """Admin: moves a lease to `checkpoint` and frees it (only for a stopped application)."""
        update, values = _move_to(
            checkpoint, "#leaseCounter = :next", removes=("#leaseOwner", "#handoffTo")
        )
        outcome = await self._update(
            "reset",
            key,
            update,
            "#leaseCounter = :counter",
            {**values, ":next": n(expect_counter + 1), ":counter": n(expect_counter)},
        )
        return outcome.ok

    # --- heartbeats -------------------------------------------------------------------------

    async def register_worker(
        self, worker_id: str, lease_count: int = 0, deadline: float | None = None
    ) -> int:
        """(Re)starts a worker's heartbeat item, clearing any fence. Returns its counter."""
        outcome = await self._update(
            "register",
            worker_key(worker_id),
            "SET #heartbeatCounter = if_not_exists(#heartbeatCounter, :zero) + :one, "
            "#workerId = :id, #heartbeatAt = :at, #leaseCount = :count REMOVE #fencedBy",
            None,
            {
                ":zero": n(0),
                ":one": n(1),
                ":id": s(worker_id),
                ":at": s(_now_text()),
                ":count": n(lease_count),
            },
            return_new=True,
            deadline=deadline,
        )
        assert outcome.item is not None
        return int(outcome.item[Attr.HEARTBEAT_COUNTER]["N"])

    async def heartbeat(
        self, worker_id: str, counter: int, lease_count: int, deadline: float | None = None
    ) -> int | None:
        """Moves our heartbeat counter from `counter` to `counter + 1`. Returns the new counter,
        or None when the item was fenced, deleted or changed by someone else: we have been
        declared dead and must drop every lease."""

        def resolve(item: Item) -> bool:
            return (
                int(item.get(Attr.HEARTBEAT_COUNTER, {"N": "0"})["N"]) == counter + 1
                and Attr.FENCED_BY not in item
            )

        outcome = await self._update(
            "heartbeat",
            worker_key(worker_id),
            "SET #heartbeatCounter = :next, #heartbeatAt = :at, #leaseCount = :count",
            "#heartbeatCounter = :counter AND attribute_not_exists(#fencedBy)",
            {
                ":next": n(counter + 1),
                ":at": s(_now_text()),
                ":count": n(lease_count),
                ":counter": n(counter),
            },
            resolve=resolve,
            deadline=deadline,
        )
        return counter + 1 if outcome.ok else None

    async def fence_worker(self, worker_id: str, counter: int, by: str) -> FenceOutcome:
        """Declares a worker dead if its heartbeat is still at `counter`. From then on its
        heartbeat writes fail, so it can never again believe it owns what we take."""
        outcome = await self._update(
            "fence",
            worker_key(worker_id),
            "SET #fencedBy = :by",
            "#heartbeatCounter = :counter AND attribute_not_exists(#fencedBy)",
            {":by": s(by), ":counter": n(counter)},
            resolve=lambda item: item.get(Attr.FENCED_BY) == s(by),
        )
        if outcome.ok:
            return FenceOutcome.FENCED
        if outcome.item is None:
            return FenceOutcome.GONE
        if Attr.FENCED_BY in outcome.item:
            return FenceOutcome.ALREADY_FENCED
        return FenceOutcome.ALIVE

    async def delete_worker(self, worker_id: str, counter: int | None = None) -> bool:
        """Deletes a heartbeat item (ours at shutdown, or a dead worker's that owns nothing)."""
        params = self._key(worker_key(worker_id))
        if counter is not None:
            params["ConditionExpression"] = "#heartbeatCounter = :counter"
        values = {":counter": n(counter or 0)}
        return (await self._write("delete_worker", "delete_item", params, values)).ok
