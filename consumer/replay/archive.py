"""Archive replay: the chosen pipelines fed from the audit archive in S3, for history older
than the stream's retention. docs/replay.md, "From the audit archive", gives the rules: which
partitions are listed (objects never span two arrival hours), the order of objects and shards,
duplicates (`RecentIds`), one process without leases or checkpoints.

A line (`consumer.pipeline.audit.lines`) ends with `,"change":<the record exactly as read>}`;
the bytes after the first `,"change":` (in the metadata before it every quote is escaped) are
the raw record, byte for byte: no parse and re-encode, so numbers keep their digits.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import groupby
from operator import attrgetter
from typing import Any
from urllib.parse import unquote

import orjson
import structlog

from consumer.pipeline.audit.layout import SUFFIX, ObjectLayout, Partition
from consumer.pipeline.processor import ShardPipeline, ShardStopped
from consumer.records import ChangeEvent, DecodeError, RecordPosition, decode_destination_record
from consumer.records.batch import RawRecord, ReadBatch
from consumer.replay.dry_run import DryRun
from consumer.replay.progress import StateListener, reporting_states
from consumer.replay.request import ReplayRequest, replay_settings
from consumer.replay.status import STOPPED, LocalTotals, ReplayOutcome, ReplayState, ShardTally
from consumer.replay.window import (
    HOUR_MS,
    ChangeTimeFilter,
    ReplayError,
    ReplayInputError,
    ReplayWindow,
)
from consumer.service.assembly import open_runtime
from consumer.settings import Settings

log = structlog.get_logger(__name__)

BATCH_RECORDS = 1000
SHARD_CONCURRENCY = 8
# Sorts objects named by an event id (no decimal sequence number) after the others.
_NO_SEQUENCE = (1 << 200, 0)
_CHANGE = b',"change":'


@dataclass(frozen=True)
class ArchiveLocation:
    """Where the archive is: bucket, prefix ("" or ending in "/"), and the source table."""

    bucket: str
    prefix: str
    table: str

    @property
    def table_prefix(self) -> str:
        return ObjectLayout(self.prefix).table_prefix(self.table)


@dataclass(frozen=True, order=True)
class ArchiveObject:
    """One audit object. Orders by partition hour, shard, then first record's position."""

    hour: int
    shard_id: str
    first: tuple[int, int]
    key: str


def hour_range(window: ReplayWindow) -> tuple[int | None, int]:
    """The partition hours (since the epoch) to read: from the hour before `--from`'s (None:
    from the start of the archive) to the hour of the cut-off."""
    first = None if window.from_ms is None else window.from_ms // HOUR_MS - 1
    return first, window.cutoff_ms // HOUR_MS


def parse_object_key(key: str, table_prefix: str) -> ArchiveObject | None:
    """The object of `key`, or None for a key that is not an audit object of this table."""
    if not key.startswith(table_prefix) or not key.endswith(SUFFIX):
        return None
    parts = key[len(table_prefix) :].split("/")
    if len(parts) != 4 or not parts[0].startswith("dt=") or not parts[1].startswith("hour="):
        return None
    try:
        day = datetime.strptime(parts[0][3:], "%Y-%m-%d").replace(tzinfo=UTC)
        hour_of_day = int(parts[1][5:])
    except ValueError:
        return None
    if not 0 <= hour_of_day <= 23:
        return None
    hour = int(day.timestamp()) // 3600 + hour_of_day
    name = parts[3][: -len(SUFFIX)]
    sequence, _, sub = name.rpartition("-")
    first = (int(sequence), int(sub)) if sequence.isdigit() and sub.isdigit() else _NO_SEQUENCE
    return ArchiveObject(hour, unquote(parts[2]), first, key)


def select_days(days: Iterable[str], first_hour: int | None, last_hour: int) -> list[str]:
    """The `YYYY-MM-DD` partitions that can hold the hours [first_hour, last_hour]."""
    low = Partition(first_hour).dt if first_hour is not None else ""
    high = Partition(last_hour).dt
    return sorted(day for day in days if low <= day <= high)


def _pages(s3: Any, **params: Any) -> AsyncIterator[dict[str, Any]]:
    """Every ListObjectsV2 page of `params`."""
    pages: AsyncIterator[dict[str, Any]] = s3.get_paginator("list_objects_v2").paginate(**params)
    return pages


async def _common_prefixes(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [
        entry["Prefix"]
        async for page in _pages(s3, Bucket=bucket, Prefix=prefix, Delimiter="/")
        for entry in page.get("CommonPrefixes", [])
    ]


async def find_table(s3: Any, bucket: str, prefix: str, table: str | None) -> ArchiveLocation:
    """The archive location for `table`, or for the only table in the archive."""
    if table:
        return ArchiveLocation(bucket, prefix, table)
    tables = [
        unquote(entry[len(prefix) :].removeprefix("table=").rstrip("/"))
        for entry in await _common_prefixes(s3, bucket, prefix)
        if entry[len(prefix) :].startswith("table=")
    ]
    if not tables:
        raise ReplayError(f"no audit archive under s3://{bucket}/{prefix}")
    if len(tables) > 1:
        raise ReplayInputError(
            f"the archive s3://{bucket}/{prefix} holds several tables ({', '.join(tables)}): "
            "choose one with --table"
        )
    return ArchiveLocation(bucket, prefix, tables[0])


async def list_objects(
    s3: Any, location: ArchiveLocation, window: ReplayWindow
) -> list[ArchiveObject]:
    """Every object of the window's partitions, sorted (hour, shard, first position)."""
    first_hour, last_hour = hour_range(window)
    table_prefix = location.table_prefix
    day_prefixes = await _common_prefixes(s3, location.bucket, table_prefix)
    days = [entry[len(table_prefix) :].removeprefix("dt=").rstrip("/") for entry in day_prefixes]
    objects: list[ArchiveObject] = []
    for day in select_days(days, first_hour, last_hour):
        async for page in _pages(s3, Bucket=location.bucket, Prefix=f"{table_prefix}dt={day}/"):
            for entry in page.get("Contents", []):
                parsed = parse_object_key(entry["Key"], table_prefix)
                if parsed is None:
                    continue
                if (first_hour is None or parsed.hour >= first_hour) and parsed.hour <= last_hour:
                    objects.append(parsed)
    return sorted(objects)


class LineFormatError(ValueError):
    """A line that is not an audit line (the message never holds the line's contents)."""


@dataclass(frozen=True, slots=True)
class ArchivedRecord(RawRecord):
    """A change record read back from the archive. `arrival_ms` is 0 where the line has no
    arrival time (Streams mode), `created_at_us` is the line's change time."""

    sub_sequence_number: int = 0
    created_at_us: int = 0
    event_id: str = ""
    stream: str = ""


def parse_line(line: bytes) -> ArchivedRecord:
    """One audit line as a record; LineFormatError if it is not one."""
    cut = line.find(_CHANGE)
    if cut < 0:
        raise LineFormatError("no change field")
    body = line.rstrip()
    if not body.endswith(b"}"):
        raise LineFormatError("the line does not end with '}'")
    try:
        head = orjson.loads(line[:cut] + b"}")
    except orjson.JSONDecodeError as error:
        raise LineFormatError(f"the metadata is not JSON: {error}") from None
    raw = body[cut + len(_CHANGE) : -1].strip()
    if not (raw.startswith(b"{") and raw.endswith(b"}")):
        raise LineFormatError("the change field is not a JSON object")
    try:
        arrival = head.get("arrival_time")
        return ArchivedRecord(
            data=raw,
            sequence_number=str(head["sequence_number"]),
            arrival_ms=round(datetime.fromisoformat(arrival).timestamp() * 1000) if arrival else 0,
            partition_key="",
            sub_sequence_number=int(head.get("sub_sequence_number") or 0),
            created_at_us=int(head["created_at_us"]),
            event_id=str(head["event_id"]),
            stream=str(head.get("stream") or ""),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise LineFormatError(f"bad metadata: {type(error).__name__} {error}") from None


def read_object(body: bytes) -> tuple[list[ArchivedRecord], int]:
    """Every line of a gzip NDJSON object, in order, and the count of lines that are not
    audit lines. Raises LineFormatError if the body is not gzip."""
    try:
        text = gzip.decompress(body)
    except (OSError, EOFError) as error:
        raise LineFormatError(f"not a gzip object: {error}") from None
    records: list[ArchivedRecord] = []
    bad = 0
    for line in text.split(b"\n"):
        if not line.strip():
            continue
        try:
            records.append(parse_line(line))
        except LineFormatError:
            bad += 1
    return records, bad


def decode_archived(
    record: RawRecord, stream: str, shard_id: str
) -> list[ChangeEvent | DecodeError]:
    """A pipeline decoder for archived records: the change at the position its line names."""
    sub_sequence = record.sub_sequence_number if isinstance(record, ArchivedRecord) else 0
    position = RecordPosition(
        stream, shard_id, record.sequence_number, sub_sequence, record.arrival_ms or None
    )
    try:
        return [decode_destination_record(record.data, position)]
    except DecodeError as error:
        return [error]


class RecentIds:
    """Event ids seen lately, up to `capacity` (oldest forgotten first). Skipping a change the
    archive holds twice only saves writes: a copy that slips past is harmless to the sinks."""

    def __init__(self, capacity: int = 500_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, event_id: str) -> bool:
        """True the first time `event_id` is seen (within the window)."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True


class NoCheckpoints:
    """An archive replay keeps no checkpoints (see the module docstring)."""

    async def checkpoint(self, sequence_number: str, sub_sequence_number: int = 0) -> None:
        return None

    async def checkpoint_shard_end(self, child_shard_ids: Iterable[str] = ()) -> None:
        return None


@dataclass
class ArchiveTotals:
    objects: int = 0
    lines: int = 0
    bad_lines: int = 0
    duplicates: int = 0
    outside_window: int = 0


def batches(records: Sequence[ArchivedRecord], shard_id: str) -> list[ReadBatch]:
    """Records cut into pipeline batches of at most BATCH_RECORDS."""
    return [
        ReadBatch(shard_id, records[start : start + BATCH_RECORDS], None, None)
        for start in range(0, len(records), BATCH_RECORDS)
    ]


def by_hour(objects: Sequence[ArchiveObject]) -> list[list[ArchiveObject]]:
    """Objects grouped by partition hour, ascending."""
    return [list(group) for _, group in groupby(sorted(objects), attrgetter("hour"))]


class ArchiveReplay:
    """Replays `objects` (from `archive_index.list_objects`) into the request's pipelines.
    Constructing it does no I/O."""

    def __init__(
        self,
        settings: Settings,
        request: ReplayRequest,
        location: ArchiveLocation,
        objects: Sequence[ArchiveObject],
        *,
        on_state: StateListener | None = None,
    ) -> None:
        self.settings = replay_settings(settings, request)
        self.request = request
        self.location = location
        self.objects = list(objects)
        self._on_state = on_state or (lambda state: None)
        self._seen = RecentIds()
        self.totals = ArchiveTotals()
        self.shards = {item.shard_id: ShardTally(item.shard_id) for item in self.objects}

    def state(self) -> ReplayState:
        return ReplayState.of_tallies(self.shards.values(), self.request.window.to_ms)

    async def run(self, stop: asyncio.Event) -> ReplayOutcome:
        settings = self.settings
        window = self.request.window
        decoder = ChangeTimeFilter(decode_archived, window)
        async with open_runtime(settings) as runtime:
            s3 = await runtime.client("s3")
            runtime.dead_letter_queue()  # says once, at start, where failed records go
            runtime.routes("preflight")  # a bad filter or transform fails here, before a read

            pipelines: dict[str, ShardPipeline] = {}

            def pipeline_for(shard_id: str, stream: str) -> ShardPipeline:
                if shard_id not in pipelines:
                    pipelines[shard_id] = runtime.pipeline(
                        stream,
                        shard_id,
                        NoCheckpoints(),
                        routes=runtime.routes(shard_id),
                        decoder=decoder,
                    )
                return pipelines[shard_id]

            limit = asyncio.Semaphore(SHARD_CONCURRENCY)

            async def replay_objects(shard: ShardTally, items: list[ArchiveObject]) -> None:
                async with limit:
                    for item in items:
                        if stop.is_set() or shard.error:
                            return
                        records = await self._read(s3, item)
                        if not records:
                            continue
                        stream = records[0].stream or self.location.table
                        pipeline = pipeline_for(shard.shard_id, stream)
                        try:
                            for batch in batches(records, shard.shard_id):
                                await pipeline.process(batch)
                                shard.saw(batch.records)
                        except ShardStopped as stopped:
                            log.error(
                                "replay.shard_stopped", shard_id=shard.shard_id, error=str(stopped)
                            )
                            shard.end, shard.error = STOPPED, str(stopped)

            async with reporting_states(self._on_state, self.state, stop):
                for hour in by_hour(self.objects):
                    if stop.is_set():
                        break
                    async with asyncio.TaskGroup() as group:
                        for shard_id, items in groupby(hour, attrgetter("shard_id")):
                            group.create_task(replay_objects(self.shards[shard_id], list(items)))
                for pipeline in pipelines.values():
                    await pipeline.drain()
                for shard in self.shards.values():
                    shard.done = not stop.is_set() and shard.error is None
        state = self.state()
        self._on_state(state)
        local = LocalTotals(skipped_after_to=decoder.skipped_after_to)
        for pipeline in pipelines.values():
            local.add(pipeline)
        complete = all(shard.done for shard in self.shards.values())
        log.info(
            "replay.stopped",
            complete=complete,
            objects=self.totals.objects,
            lines=self.totals.lines,
            duplicates=self.totals.duplicates,
            bad_lines=self.totals.bad_lines,
        )
        return ReplayOutcome(
            complete=complete and not stop.is_set(),
            interrupted=stop.is_set(),
            state=state,
            local=local,
        )

    async def count(self, stop: asyncio.Event) -> DryRun:
        """`--dry-run`: reads the objects and counts what the replay would apply."""
        window = self.request.window
        counted: dict[str, ShardTally] = {}
        started = time.monotonic()
        s3_client = self.settings.aws.endpoints().aio_client("s3")
        async with reporting_states(self._on_state, self.state, stop), s3_client as s3:
            for item in self.objects:
                if stop.is_set():
                    break
                records = await self._read(s3, item)
                shard = counted.setdefault(item.shard_id, self.shards[item.shard_id])
                shard.saw(records)
                shard.bytes += sum(len(record.data) for record in records)
                shard.changes += sum(1 for r in records if window.applies(r.created_at_us))
        for shard in self.shards.values():
            shard.done = not stop.is_set()
        self._on_state(self.state())
        location = self.location
        return DryRun(
            counts=tuple(replace(shard, end="archive") for _, shard in sorted(counted.items())),
            elapsed_s=time.monotonic() - started,
            description=(
                f"archive s3://{location.bucket}/{location.table_prefix} "
                f"({len(self.objects)} objects in the window)"
            ),
            objects=self.totals.objects,
        )

    async def _read(self, s3: Any, item: ArchiveObject) -> list[ArchivedRecord]:
        """The object's lines that the replay applies: in the window, first copies only."""
        response = await s3.get_object(Bucket=self.location.bucket, Key=item.key)
        async with response["Body"] as body:
            data = await body.read()
        self.totals.objects += 1
        try:
            # Decompression of a multi-MB object would stall every other shard's task.
            records, bad = await asyncio.to_thread(read_object, data)
        except LineFormatError as error:
            log.warning("replay.bad_object", key=item.key, error=str(error))
            self.totals.bad_lines += 1
            return []
        self.totals.lines += len(records) + bad
        self.totals.bad_lines += bad
        window = self.request.window
        kept: list[ArchivedRecord] = []
        for record in records:
            arrival = record.arrival_ms or record.created_at_us // 1000
            if not window.arrived_in(arrival):
                self.totals.outside_window += 1
            elif not self._seen.first_time(record.event_id):
                self.totals.duplicates += 1
            else:
                kept.append(record)
        return kept
