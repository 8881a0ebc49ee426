"""Snapshot parts (Scan segments or export data files) leased and checkpointed in the lease table.

The items live in the service's lease table beside the shard leases, under keys that cannot be
shard ids (`__snapshot__#…`, skipped by the shard coordinator):

- `__snapshot__#current#<purpose>#<table>`: which snapshot is running (its id), so workers
  started later, or restarted after a `kill -9`, join it instead of starting another.
- `__snapshot__#<id>`: the snapshot itself: source, table, version time, parts, export ARN.
- `__snapshot__#<id>@readers`: the processes reading a scan snapshot and their
  `--max-read-units`, a map of heartbeats (`consumer.snapshot.read_budget`).
- `__snapshot__#<id>#<part>`: one part's lease and progress: `leaseOwner`, `leaseCounter`
  (the fencing token, +1 on every take), `expiresAtMs` (wall clock; a part whose owner stopped
  renewing is taken after it), `position` (the resume state: a Scan's LastEvaluatedKey or a
  file's line number, as JSON), `ordinal` (items read before that position), `items`,
  `bytes`, `startedUs` (a segment's scan start, kept across restarts), `finished`, `failed`.

Every ownership change and checkpoint is a conditional write on (leaseOwner, leaseCounter),
as for shards, so a worker that lost a part can no longer checkpoint it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import orjson
from botocore.exceptions import ClientError

from checkpoints.model import SNAPSHOT_KEY_PREFIX, int_attr, n, s, text_attr
from checkpoints.table import CONDITIONAL_FAILED

_COUNTERS = {"#items": "items", "#bytes": "bytes"}  # reserved words in DynamoDB expressions

# The resume state of one part: {"key": LastEvaluatedKey} or {"line": n}; None = the start.
ResumeState = Mapping[str, Any] | None


def wall_us() -> int:
    """Now, in epoch microseconds."""
    return time.time_ns() // 1000


class PartLost(RuntimeError):
    """Another worker took the part (our lease expired): stop reading it."""


class SnapshotConflict(RuntimeError):
    """A snapshot of this table is already running with other options (one line)."""


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot: `version_us` is the version its items are applied with (export time or,
    for a scan, 0: each segment has its own scan start)."""

    snapshot_id: str
    purpose: str  # "backfill" or "verify": one running snapshot per table and purpose
    table: str
    source: str  # "scan" or "export"
    pipelines: tuple[str, ...]
    created_us: int
    parts: tuple[str, ...] = ()
    version_us: int = 0
    export_arn: str | None = None


@dataclass(frozen=True)
class PartState:
    """A part as stored."""

    name: str
    owner: str | None
    counter: int
    expires_at_ms: int
    position: ResumeState
    ordinal: int
    items: int
    size: int
    started_us: int | None
    finished: bool
    failed: str | None
    detail: str | None  # the data file's S3 key for export parts

    def available(self, me: str, now_ms: int) -> bool:
        return not self.finished and (
            self.owner is None or self.owner == me or self.expires_at_ms <= now_ms
        )


@dataclass
class PartLease:
    """Our hold on one part; `counter` is the fencing token of every write."""

    part: PartState
    owner: str
    counter: int
    expires_at_ms: int

    @property
    def name(self) -> str:
        return self.part.name


def part_from_item(item: Mapping[str, Any]) -> PartState:
    position = text_attr(item, "position")
    started = item.get("startedUs")
    return PartState(
        name=text_attr(item, "partName") or "",
        owner=text_attr(item, "leaseOwner"),
        counter=int_attr(item, "leaseCounter"),
        expires_at_ms=int_attr(item, "expiresAtMs"),
        position=orjson.loads(position) if position else None,
        ordinal=int_attr(item, "ordinal"),
        items=int_attr(item, "items"),
        size=int_attr(item, "bytes"),
        started_us=None if started is None else int(started["N"]),
        finished=bool(item.get("finished", {}).get("BOOL", False)),
        failed=text_attr(item, "failed"),
        detail=text_attr(item, "detail"),
    )


async def scan_all(client: Any, **params: Any) -> list[dict[str, Any]]:
    """Every item a Scan with `params` returns, page after page."""
    items: list[dict[str, Any]] = []
    while True:
        page = await client.scan(**params)
        items.extend(page.get("Items", []))
        if not page.get("LastEvaluatedKey"):
            return items
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class SnapshotLeases:
    """The lease-table side of one table's snapshots. Constructors do no I/O."""

    def __init__(
        self,
        client: Any,
        lease_table: str,
        *,
        lease_s: float = 30.0,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._client = client
        self._table = lease_table
        self.lease_ms = int(lease_s * 1000)
        self.now_ms = wall_ms

    # --- keys ---------------------------------------------------------------------------

    @staticmethod
    def current_key(purpose: str, table: str) -> str:
        return f"{SNAPSHOT_KEY_PREFIX}current#{purpose}#{table}"

    @staticmethod
    def snapshot_key(snapshot_id: str) -> str:
        return f"{SNAPSHOT_KEY_PREFIX}{snapshot_id}"

    @staticmethod
    def part_key(snapshot_id: str, part: str) -> str:
        return f"{SNAPSHOT_KEY_PREFIX}{snapshot_id}#{part}"

    @staticmethod
    def readers_key(snapshot_id: str) -> str:
        # "@", not "#": never under the parts' prefix, so `parts` does not see it.
        return f"{SNAPSHOT_KEY_PREFIX}{snapshot_id}@readers"

    # --- snapshots ----------------------------------------------------------------------

    async def _get(self, key: str) -> dict[str, Any] | None:
        answer = await self._client.get_item(
            TableName=self._table, Key={"leaseKey": s(key)}, ConsistentRead=True
        )
        return cast(dict[str, Any] | None, answer.get("Item"))

    async def _conditional(self, method: str, **params: Any) -> bool:
        """One conditional write (`method` of the client); False when its condition failed."""
        try:
            await getattr(self._client, method)(TableName=self._table, **params)
        except ClientError as error:
            if error.response["Error"]["Code"] != CONDITIONAL_FAILED:
                raise
            return False
        return True

    async def current(self, purpose: str, table: str) -> SnapshotInfo | None:
        """The running snapshot of `table` for `purpose`, if any."""
        pointer = await self._get(self.current_key(purpose, table))
        if pointer is None:
            return None
        snapshot_id = text_attr(pointer, "snapshotId") or ""
        return await self.describe(snapshot_id)

    async def describe(self, snapshot_id: str) -> SnapshotInfo | None:
        item = await self._get(self.snapshot_key(snapshot_id))
        if item is None:
            return None
        return SnapshotInfo(
            snapshot_id=snapshot_id,
            purpose=text_attr(item, "purpose") or "",
            table=text_attr(item, "table") or "",
            source=text_attr(item, "source") or "",
            parts=tuple(orjson.loads(text_attr(item, "parts") or "[]")),
            version_us=int_attr(item, "versionUs"),
            export_arn=text_attr(item, "exportArn"),
            pipelines=tuple(orjson.loads(text_attr(item, "pipelines") or "[]")),
            created_us=int_attr(item, "createdUs"),
        )

    async def begin(self, info: SnapshotInfo) -> SnapshotInfo:
        """Starts `info` as the table's running snapshot, or joins the one already running.
        Creates the part items (idempotent: a part that exists is left as it is)."""
        existing = await self.current(info.purpose, info.table)
        if existing is None:
            item = {
                "leaseKey": s(self.snapshot_key(info.snapshot_id)),
                "purpose": s(info.purpose),
                "table": s(info.table),
                "source": s(info.source),
                "parts": s(orjson.dumps(list(info.parts)).decode()),
                "versionUs": n(info.version_us),
                "pipelines": s(orjson.dumps(list(info.pipelines)).decode()),
                "createdUs": n(info.created_us),
            }
            if info.export_arn:
                item["exportArn"] = s(info.export_arn)
            await self._client.put_item(TableName=self._table, Item=item)
            await self._conditional(
                "put_item",
                Item={
                    "leaseKey": s(self.current_key(info.purpose, info.table)),
                    "snapshotId": s(info.snapshot_id),
                },
                ConditionExpression="attribute_not_exists(leaseKey)",
            )
            existing = await self.current(info.purpose, info.table)
            assert existing is not None
        if existing.source != info.source or existing.pipelines != info.pipelines:
            raise SnapshotConflict(
                f"snapshot {existing.snapshot_id} of table {info.table} is still running "
                f"(source {existing.source}, pipelines {','.join(existing.pipelines)}); "
                "run the same command to resume it, or end it first with --abandon"
            )
        await self._add_parts(existing.snapshot_id, existing.parts, {})
        return existing

    async def _add_parts(
        self, snapshot_id: str, parts: Sequence[str], details: Mapping[str, str]
    ) -> None:
        for part in parts:
            item = {
                "leaseKey": s(self.part_key(snapshot_id, part)),
                "partName": s(part),
                "leaseCounter": n(0),
                "expiresAtMs": n(0),
                "ordinal": n(0),
                "items": n(0),
                "bytes": n(0),
                "finished": {"BOOL": False},
            }
            if part in details:
                item["detail"] = s(details[part])
            await self._conditional(
                "put_item", Item=item, ConditionExpression="attribute_not_exists(leaseKey)"
            )

    async def set_export_parts(
        self, info: SnapshotInfo, details: Mapping[str, str], version_us: int
    ) -> SnapshotInfo:
        """Records the parts (name -> detail) and version of a snapshot that knew neither at
        its start (an export's data files and time, known when it completes); idempotent."""
        parts = tuple(details)
        await self._client.update_item(
            TableName=self._table,
            Key={"leaseKey": s(self.snapshot_key(info.snapshot_id))},
            UpdateExpression="SET #p = :p, versionUs = :v",
            ExpressionAttributeNames={"#p": "parts"},
            ExpressionAttributeValues={
                ":p": s(orjson.dumps(list(parts)).decode()),
                ":v": n(version_us),
            },
        )
        await self._add_parts(info.snapshot_id, parts, details)
        return replace(info, parts=parts, version_us=version_us)

    async def set_export_arn(self, info: SnapshotInfo, export_arn: str) -> SnapshotInfo:
        """Records the export this snapshot reads; the first worker to record one wins."""
        if await self._conditional(
            "update_item",
            Key={"leaseKey": s(self.snapshot_key(info.snapshot_id))},
            UpdateExpression="SET exportArn = :a",
            ConditionExpression="attribute_not_exists(exportArn)",
            ExpressionAttributeValues={":a": s(export_arn)},
        ):
            return replace(info, export_arn=export_arn)
        stored = await self.describe(info.snapshot_id)
        assert stored is not None
        return stored

    async def end(self, info: SnapshotInfo) -> None:
        """The snapshot is done: the table has no running snapshot any more."""
        await self._conditional(
            "delete_item",
            Key={"leaseKey": s(self.current_key(info.purpose, info.table))},
            ConditionExpression="snapshotId = :id",
            ExpressionAttributeValues={":id": s(info.snapshot_id)},
        )

    # --- readers (the shared read budget) ------------------------------------------------

    async def beat_reader(
        self, snapshot_id: str, process_id: str, max_read_units: float | None
    ) -> None:
        """Our heartbeat in the snapshot's readers map, live for one lease period."""
        entry: dict[str, Any] = {"expiresAtMs": n(self.now_ms() + self.lease_ms)}
        if max_read_units is not None:
            entry["maxReadUnits"] = {"N": repr(float(max_read_units))}
        key = {"leaseKey": s(self.readers_key(snapshot_id))}
        for _ in range(2):
            if await self._conditional(
                "update_item",
                Key=key,
                UpdateExpression="SET readers.#me = :entry",
                ConditionExpression="attribute_exists(readers)",
                ExpressionAttributeNames={"#me": process_id},
                ExpressionAttributeValues={":entry": {"M": entry}},
            ):
                return
            await self._conditional(  # the first reader creates the map
                "put_item",
                Item={**key, "readers": {"M": {}}},
                ConditionExpression="attribute_not_exists(leaseKey)",
            )

    async def live_readers(self, snapshot_id: str) -> dict[str, float | None]:
        """The processes whose heartbeat has not expired, with their --max-read-units."""
        item = await self._get(self.readers_key(snapshot_id))
        now = self.now_ms()
        live: dict[str, float | None] = {}
        for process, value in ((item or {}).get("readers", {}).get("M", {})).items():
            entry = value.get("M", {})
            if int(entry.get("expiresAtMs", {}).get("N", "0")) > now:
                limit = entry.get("maxReadUnits")
                live[process] = None if limit is None else float(limit["N"])
        return live

    async def drop_reader(self, snapshot_id: str, process_id: str) -> None:
        await self._client.update_item(
            TableName=self._table,
            Key={"leaseKey": s(self.readers_key(snapshot_id))},
            UpdateExpression="REMOVE readers.#me",
            ExpressionAttributeNames={"#me": process_id},
        )

    # --- parts --------------------------------------------------------------------------

    async def parts(self, snapshot_id: str) -> list[PartState]:
        """Every part of the snapshot, strongly consistent."""
        items = await scan_all(
            self._client,
            TableName=self._table,
            ConsistentRead=True,
            FilterExpression="begins_with(leaseKey, :p)",
            ExpressionAttributeValues={":p": s(self.part_key(snapshot_id, ""))},
        )
        return sorted(map(part_from_item, items), key=lambda part: part.name)

    async def take(self, snapshot_id: str, me: str, part: PartState) -> PartLease | None:
        """Takes an available part (free, ours, or its owner's lease expired). None if another
        worker got it first."""
        now = self.now_ms()
        expires = now + self.lease_ms
        if not await self._conditional(
            "update_item",
            Key={"leaseKey": s(self.part_key(snapshot_id, part.name))},
            UpdateExpression=(
                "SET leaseOwner = :me, leaseCounter = :next, expiresAtMs = :exp, "
                "startedUs = if_not_exists(startedUs, :started)"
            ),
            ConditionExpression=(
                "leaseCounter = :seen AND finished = :false AND "
                "(attribute_not_exists(leaseOwner) OR leaseOwner = :me OR expiresAtMs <= :now)"
            ),
            ExpressionAttributeValues={
                ":me": s(me),
                ":next": n(part.counter + 1),
                ":seen": n(part.counter),
                ":exp": n(expires),
                ":now": n(now),
                ":started": n(now * 1000),
                ":false": {"BOOL": False},
            },
        ):
            return None
        fresh = await self._get(self.part_key(snapshot_id, part.name))
        state = None if fresh is None else part_from_item(fresh)
        if state is None or state.owner != me or state.counter != part.counter + 1:
            return None  # moto's conditions are not atomic under concurrency: re-check
        return PartLease(state, me, state.counter, expires)

    async def _owned_update(
        self,
        snapshot_id: str,
        lease: PartLease,
        update: str,
        values: Mapping[str, Any],
        names: Mapping[str, str] | None = None,
    ) -> None:
        now = self.now_ms()
        if not await self._conditional(
            "update_item",
            Key={"leaseKey": s(self.part_key(snapshot_id, lease.name))},
            UpdateExpression=update,
            ConditionExpression="leaseOwner = :me AND leaseCounter = :token",
            ExpressionAttributeValues={":me": s(lease.owner), ":token": n(lease.counter), **values},
            **({"ExpressionAttributeNames": dict(names)} if names else {}),
        ):
            raise PartLost(f"part {lease.name} was taken by another worker")
        lease.expires_at_ms = now + self.lease_ms

    async def checkpoint(
        self,
        snapshot_id: str,
        lease: PartLease,
        position: ResumeState,
        ordinal: int,
        items: int,
        size: int,
    ) -> None:
        """Resume after `position` (`ordinal` items read before it); renews the lease."""
        await self._owned_update(
            snapshot_id,
            lease,
            "SET #pos = :pos, ordinal = :ord, #items = :items, #bytes = :bytes, expiresAtMs = :exp",
            {
                ":pos": s(orjson.dumps(position).decode()),
                ":ord": n(ordinal),
                ":items": n(items),
                ":bytes": n(size),
                ":exp": n(self.now_ms() + self.lease_ms),
            },
            {"#pos": "position", **_COUNTERS},
        )

    async def renew(self, snapshot_id: str, lease: PartLease) -> None:
        await self._owned_update(
            snapshot_id,
            lease,
            "SET expiresAtMs = :exp",
            {":exp": n(self.now_ms() + self.lease_ms)},
        )

    async def finish(
        self,
        snapshot_id: str,
        lease: PartLease,
        items: int,
        size: int,
        failed: str | None = None,
    ) -> None:
        """The part is done (or failed for good, `failed` saying why); releases it."""
        update = "SET finished = :true, #items = :items, #bytes = :bytes"
        values: dict[str, Any] = {":true": {"BOOL": True}, ":items": n(items), ":bytes": n(size)}
        if failed is not None:
            update += ", failed = :failed"
            values[":failed"] = s(failed)
        await self._owned_update(
            snapshot_id, lease, update + " REMOVE leaseOwner", values, _COUNTERS
        )

    def still_owned(self, lease: PartLease) -> bool:
        """By our clock, the lease has not expired."""
        return self.now_ms() < lease.expires_at_ms
