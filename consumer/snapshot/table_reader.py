"""The shared table reader: a parallel, rate-limited, leased, resumable Scan of the source table,
which `consumer backfill` applies through the sinks and `consumer verify` compares with them.

- A part is one Scan segment, `segment-NNNN`, leased and checkpointed like a shard
  (`consumer.snapshot.segments`). Its resume state is the LastEvaluatedKey after the last
  committed page (None: the segment's start), with the items read before it (`ordinal`).
- `TableReader.pages()` is one worker's loop: take an available segment, yield its pages, take
  the next; it returns only when every segment is finished.
- Resume rule: a restarted reader resumes *after the last committed page* (at least once). With
  `auto_commit` (verify) a page is committed when the next one is asked for; without it
  (backfill) the caller commits with `await page.commit()` once every sink holds the page.
  Committing a part's last page (`page.last`) finishes the part; a lost lease raises PartLost.
- `page.scan_start_us`: when the segment's scan first started (kept across restarts): every item
  was read at or after it, so it is the version a backfill applies.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import orjson
import structlog

from consumer.aws.backoff import Backoff
from consumer.snapshot.rate import ReadUnitLimiter, read_with_retries
from consumer.snapshot.segments import (
    PartLease,
    PartLost,
    ResumeState,
    SnapshotInfo,
    SnapshotLeases,
)

log = structlog.get_logger(__name__)

# One DynamoDB item in the wire format (typed JSON, as the low-level client returns it).
WireItem = dict[str, Any]
SEGMENT_PREFIX = "segment-"
# Eventually consistent reads: half a unit per 4 KB, summed over the page.
_UNIT_BYTES = 4096
_POLL_S = 1.0  # how often a worker with no part to read looks again


def part_names(prefix: str, count: int) -> tuple[str, ...]:
    """`segment-0000`, … or `file-0000`, …"""
    return tuple(f"{prefix}{index:04d}" for index in range(count))


def base64_bytes(value: object) -> str:
    """orjson's `default` for binaries: base64 text, as in stream records."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


@dataclass
class Page:
    """One page of one part: its items (wire format), where it starts (`first_ordinal` items
    of the part come before it), and whether it is the part's last (`last`)."""

    part: str
    items: list[WireItem]
    scan_start_us: int
    first_ordinal: int
    last: bool
    size: int
    size_through: int  # bytes of the part up to and including this page
    resume: ResumeState
    lease: PartLease = field(repr=False)
    _commit: Callable[[Page], Awaitable[None]] = field(repr=False)
    committed: bool = False
    # Export files only: each item's ordinal (line number) when lines were skipped, the lines
    # that are not items (ordinal, raw line, reason), and why the part ends early (a file
    # missing or corrupt), recorded when its last page is committed.
    item_ordinals: list[int] | None = None
    bad: list[tuple[int, bytes, str]] = field(default_factory=list)
    failed: str | None = None

    @property
    def count(self) -> int:
        """Entries of the part this page covers (items and bad lines)."""
        return len(self.items) + len(self.bad)

    def ordinals(self) -> list[int]:
        if self.item_ordinals is not None:
            return self.item_ordinals
        return list(range(self.first_ordinal, self.first_ordinal + len(self.items)))

    async def commit(self) -> None:
        """Resume after this page from now on (finishes the part after its last page).
        Raises PartLost if another worker holds the part now."""
        if not self.committed:
            await self._commit(self)
            self.committed = True


@dataclass
class ReaderStats:
    pages: int = 0
    items: int = 0
    read_units: float = 0.0
    # time.monotonic() of the first and the last Scan answer (None before any)
    first_read_at: float | None = None
    last_read_at: float | None = None


@dataclass(eq=False)
class TableReader:
    """Reads one scan snapshot's segments for one worker. Constructors do no I/O."""

    client: Any
    snapshot: SnapshotInfo
    leases: SnapshotLeases
    worker_id: str
    _: KW_ONLY
    limiter: ReadUnitLimiter | None = None
    auto_commit: bool = True
    page_items: int | None = None
    stats: ReaderStats = field(default_factory=ReaderStats, init=False)

    async def _commit(self, page: Page) -> None:
        """Checkpoint after `page` (finish its part if it is the last): the part's counters are
        the items and bytes up to and including it."""
        items = page.first_ordinal + page.count
        snapshot_id = self.snapshot.snapshot_id
        if page.last:
            await self.leases.finish(
                snapshot_id, page.lease, items, page.size_through, failed=page.failed
            )
        else:
            await self.leases.checkpoint(
                snapshot_id, page.lease, page.resume, items, items, page.size_through
            )

    async def _read_part(self, lease: PartLease) -> AsyncIterator[Page]:
        part = lease.part
        started_us = part.started_us or 0
        position = part.position
        ordinal = part.ordinal
        size_through = part.size
        params: dict[str, Any] = {
            "TableName": self.snapshot.table,
            "Segment": int(part.name.removeprefix(SEGMENT_PREFIX)),
            "TotalSegments": len(self.snapshot.parts),
            "ReturnConsumedCapacity": "TOTAL",
        }
        average_units = 0.0
        while True:
            await self._renew_if_due(lease)
            if position is not None:
                params["ExclusiveStartKey"] = position["key"]
            limits = [self.page_items]
            if self.limiter is not None:
                limits.append(self.limiter.page_limit(average_units))
            if given := [limit for limit in limits if limit is not None]:
                params["Limit"] = min(given)
            answer = await read_with_retries(
                lambda: self.client.scan(**params), self.limiter, Backoff(base_s=0.2, cap_s=10.0)
            )
            self.stats.last_read_at = time.monotonic()
            if self.stats.first_read_at is None:
                self.stats.first_read_at = self.stats.last_read_at
            items: list[WireItem] = answer.get("Items", [])
            size = len(orjson.dumps(items, default=base64_bytes))  # as JSON, binaries in base64
            units = float(answer.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0) or 0.0)
            if units <= 0:
                units = math.ceil(size / _UNIT_BYTES) * 0.5
            if self.limiter is not None:
                self.limiter.pay(units)
            if items:
                average_units = units / len(items)
            next_key = answer.get("LastEvaluatedKey")
            size_through += size
            self.stats.pages += 1
            self.stats.items += len(items)
            self.stats.read_units += units
            page = Page(
                part=part.name,
                items=items,
                scan_start_us=started_us,
                first_ordinal=ordinal,
                last=next_key is None,
                size=size,
                size_through=size_through,
                resume=None if next_key is None else {"key": next_key},
                lease=lease,
                _commit=self._commit,
            )
            yield page
            if self.auto_commit:
                await page.commit()
            if next_key is None:
                return
            position = {"key": next_key}
            ordinal += len(items)

    async def _renew_if_due(self, lease: PartLease) -> None:
        """Renews the lease once half of it has passed (checkpoints renew it too)."""
        if lease.expires_at_ms - self.leases.lease_ms // 2 <= self.leases.now_ms():
            await self.leases.renew(self.snapshot.snapshot_id, lease)

    async def _next_part(self) -> PartLease | bool | None:
        """A part we now hold; None if none is available yet; False if all are finished."""
        parts = await self.leases.parts(self.snapshot.snapshot_id)
        if parts and all(part.finished for part in parts):
            return False
        now = self.leases.now_ms()
        mine_first = sorted(parts, key=lambda p: (p.owner != self.worker_id, p.name))
        for part in mine_first:
            if part.available(self.worker_id, now):
                lease = await self.leases.take(self.snapshot.snapshot_id, self.worker_id, part)
                if lease is not None:
                    return lease
        return None

    async def pages(self) -> AsyncIterator[Page]:
        """Every page of every segment this worker reads (see the module docstring)."""
        while True:
            taken = await self._next_part()
            if taken is False:
                return
            if taken is None or taken is True:
                await asyncio.sleep(_POLL_S)
                continue
            log.info("snapshot.part_taken", part=taken.name, worker=self.worker_id)
            try:
                async for page in self._read_part(taken):
                    await self._renew_if_due(taken)
                    yield page
            except PartLost:
                log.warning("snapshot.part_lost", part=taken.name, worker=self.worker_id)


async def begin_scan_snapshot(
    leases: SnapshotLeases,
    *,
    snapshot_id: str,
    purpose: str,
    table: str,
    segments: int,
    pipelines: tuple[str, ...],
    now_us: int,
) -> SnapshotInfo:
    """Starts a scan snapshot of `table` in `segments` parts, or joins the one running."""
    info = SnapshotInfo(
        snapshot_id=snapshot_id,
        purpose=purpose,
        table=table,
        source="scan",
        parts=part_names(SEGMENT_PREFIX, segments),
        pipelines=pipelines,
        created_us=now_us,
    )
    return await leases.begin(info)

