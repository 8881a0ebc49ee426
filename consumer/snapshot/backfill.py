"""`consumer backfill`: bring a sink up to the existing table, stitched to the stream (README,
"Backfill"). Each page becomes change records (`consumer.snapshot.records`) applied by a
`ShardPipeline` per part, whose checkpoint moves only past pages every sink holds durably."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from botocore.exceptions import ClientError

from consumer.pipeline.processor import Route, ShardPipeline
from consumer.service.assembly import open_runtime
from consumer.service.preflight import check_destinations
from consumer.service.sinks import only_pipelines
from consumer.settings import Settings
from consumer.snapshot.export_reader import (
    FILE_PREFIX,
    DynamoDbExports,
    ExportApi,
    ExportProblem,
    ExportReader,
    check_export,
    check_given_export,
    load_manifest,
)
from consumer.snapshot.progress import ProgressView, run_alongside, show_progress
from consumer.snapshot.rate import ReadUnitLimiter
from consumer.snapshot.read_budget import SharedReadBudget
from consumer.snapshot.records import page_batch
from consumer.snapshot.segments import (
    PartLease,
    PartLost,
    SnapshotInfo,
    SnapshotLeases,
    wall_us,
)
from consumer.snapshot.source_table import (
    describe_source_table,
    lease_table_required,
    missing_means,
)
from consumer.snapshot.stitch import (
    StitchError,
    StitchFacts,
    check_consumer_position,
    check_static,
    lease_table_leases,
    stream_name,
)
from consumer.snapshot.table_reader import SEGMENT_PREFIX, Page, TableReader, part_names

log = structlog.get_logger(__name__)

PURPOSE = "backfill"
SNAPSHOT_PIPELINES = ("audit", "search", "replication", "null")


class BackfillError(RuntimeError):
    """A backfill that cannot start or go on; the message is one line for the user."""


@dataclass(frozen=True)
class BackfillRequest:
    table: str
    source: str = "scan"  # "scan" or "export"
    pipelines: tuple[str, ...] = ()
    segments: int = 8
    workers: int = 1
    max_read_units: float | None = None
    export_arn: str | None = None
    worker_id: str = "backfill"
    check_stitching: bool = True
    page_items: int | None = None


@dataclass
class BackfillOutcome:
    snapshot_id: str
    source: str
    items: int = 0
    size: int = 0
    parts: int = 0
    failed_parts: list[str] = field(default_factory=list)
    parked: int = 0
    read_here: int = 0
    read_units: float = 0.0  # what this process's Scans consumed
    read_window: tuple[float, float] | None = None  # monotonic first and last Scan answer
    lowest_read_share: float | None = None  # this process's smallest share of the budget
    elapsed_s: float = 0.0
    finished: bool = False


def backfill_settings(settings: Settings, pipelines: tuple[str, ...], snapshot_id: str) -> Settings:
    """The settings with only `pipelines` enabled, audit writing under `snapshot=<id>/`."""
    section = only_pipelines(settings, pipelines).pipelines
    audit = section.audit.model_copy(
        update={"prefix": f"{section.audit.prefix}snapshot={snapshot_id}/"}
    )
    return settings.model_copy(update={"pipelines": section.model_copy(update={"audit": audit})})


def enabled_among(
    settings: Settings,
    names: tuple[str, ...],
    requested: tuple[str, ...],
    offered: tuple[str, ...],
    error: type[Exception],
) -> list[str]:
    """The enabled pipelines among `names`; `error` (the command's own) if one `requested` is
    not among them (`offered`: the names the message lists) or is not enabled."""
    enabled = [name for name in names if getattr(settings.pipelines, name).enabled]
    for name in requested:
        if name not in names:
            raise error(f"unknown pipeline {name!r} (choose from {', '.join(offered)})")
        if name not in enabled:
            raise error(
                f"pipeline {name} is not enabled in the settings (pipelines.{name}.enabled)"
            )
    return enabled


def chosen_pipelines(settings: Settings, requested: tuple[str, ...]) -> tuple[str, ...]:
    pipelines = SNAPSHOT_PIPELINES
    enabled = enabled_among(settings, pipelines, requested, pipelines[:3], BackfillError)
    if requested:
        return tuple(name for name in pipelines if name in requested)
    chosen = tuple(name for name in enabled if name != "null") or tuple(enabled)
    if not chosen:
        raise BackfillError("no pipeline is enabled in the settings: nothing to backfill")
    return chosen


def new_snapshot_id(table: str, now_us: int) -> str:
    stamp = datetime.fromtimestamp(now_us / 1_000_000, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{table}-{stamp}"


def access_denied_line(error: ClientError) -> str | None:
    """One line for a refused call: DynamoDB says AccessDeniedException (HTTP 400), S3 and
    endpoints that answer in another format say HTTP 403 (botocore then gives the status as
    the code, as with moto's IAM enforcement)."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    denied = "AccessDenied" in code or code in (
        "UnauthorizedOperation",
        "UnrecognizedClientException",
    )
    if not denied and status != 403:
        return None
    shown = f"HTTP {status}" if code.isdigit() or not code else code
    return (
        f"missing permission for {error.operation_name} ({shown}): grant the backfill "
        "task role the TaskBackfillPolicy of infra/cloudformation/service.yaml"
    )


async def _renewing(
    leases: SnapshotLeases, info: SnapshotInfo, lease: PartLease, work: Awaitable[None]
) -> None:
    """Runs `work` (applying one page) while renewing the part's lease every third of it: a
    page that takes longer than the lease to apply (slow sinks, retries) must not lose its
    part, or every worker would take it, fail to checkpoint it and start again."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(leases.lease_ms / 3000)
            await leases.renew(info.snapshot_id, lease)

    await run_alongside(work, renew())


class PartCheckpointer:
    """The checkpointer `ShardPipeline` moves for one part: a checkpoint at a record commits
    the page that record ends; SHARD_END commits the part's last page (finishing the part)."""

    def __init__(self, leases: SnapshotLeases, lease: PartLease) -> None:
        self._leases = leases
        self.lease = lease
        self._pages: dict[str, Page] = {}
        self._last: Page | None = None

    def track(self, page: Page, last_sequence: str | None) -> None:
        if last_sequence is not None:
            self._pages[last_sequence] = page
        if page.last:
            self._last = page

    def ensure_owned(self) -> None:
        if not self._leases.still_owned(self.lease):
            raise PartLost(f"part {self.lease.name}: our lease expired")

    async def checkpoint(self, sequence_number: str, sub_sequence_number: int = 0) -> object:
        page = self._pages.get(sequence_number)
        if page is None:
            return None
        await page.commit()
        self._pages = {k: p for k, p in self._pages.items() if p.first_ordinal > page.first_ordinal}
        return None

    async def checkpoint_shard_end(self, child_shard_ids: object = ()) -> None:
        if self._last is not None:
            await self._last.commit()


@dataclass
class Backfill:
    """One process's part of a backfill. Constructors do no I/O; `run` does it all."""

    settings: Settings
    request: BackfillRequest
    _: KW_ONLY
    export_api: Callable[[Any], ExportApi] = DynamoDbExports
    view: ProgressView | None = None
    now_us: Callable[[], int] = wall_us
    export_poll_s: float = 10.0
    _pipelines: list[ShardPipeline] = field(default_factory=list, init=False)

    @property
    def margin_us(self) -> int:
        return int(self.settings.backfill.version_margin_s * 1_000_000)

    async def run(self) -> BackfillOutcome:
        try:
            return await self._run()
        except ClientError as error:
            line = access_denied_line(error)
            if line is None:
                raise
            raise BackfillError(line) from None
        except (ExportProblem, StitchError) as error:
            raise BackfillError(str(error)) from None

    async def _run(self) -> BackfillOutcome:
        settings, request = self.settings, self.request
        started = time.monotonic()
        pipelines = chosen_pipelines(settings, request.pipelines)
        endpoints = settings.aws.endpoints()
        async with AsyncExitStack() as stack:
            dynamodb = await stack.enter_async_context(endpoints.aio_client("dynamodb"))
            table = await describe_source_table(
                dynamodb, self.request.table, self.settings.aws.region, BackfillError
            )
            key_names = [key["AttributeName"] for key in table["KeySchema"]]
            leases = SnapshotLeases(
                dynamodb, settings.lease_table, lease_s=settings.backfill.lease_s
            )
            with lease_table_required(settings.lease_table, BackfillError):
                running = await leases.current(PURPOSE, request.table)
            s3 = None
            if request.source == "export":
                s3 = await stack.enter_async_context(endpoints.aio_client("s3"))
            if running is None:
                snapshot_us = self.now_us()
                description = None
                if request.source == "export" and request.export_arn:
                    description = await self.export_api(dynamodb).describe(request.export_arn)
                    check_given_export(description, table["TableArn"])
                    if "ExportTime" in description:
                        snapshot_us = int(description["ExportTime"].timestamp() * 1_000_000)
                if request.check_stitching:
                    await self._check_stitching(stack, dynamodb, snapshot_us, pipelines)
                # A new snapshot's time is after the check (see consumer.snapshot.stitch).
                now_us = self.now_us()
                scan = request.source == "scan"
                info = await leases.begin(
                    SnapshotInfo(
                        snapshot_id=new_snapshot_id(request.table, now_us),
                        purpose=PURPOSE,
                        table=request.table,
                        source="scan" if scan else "export",
                        pipelines=pipelines,
                        created_us=now_us,
                        parts=part_names(SEGMENT_PREFIX, request.segments) if scan else (),
                        export_arn=None if scan else request.export_arn,
                    )
                )
            else:
                if running.source != request.source or running.pipelines != pipelines:
                    raise BackfillError(
                        f"backfill {running.snapshot_id} of {request.table} is still running "
                        f"(--source {running.source}, --pipelines {','.join(running.pipelines)})"
                        ": run it with those options to resume it, or end it with --abandon"
                    )
                info = running
                log.info("backfill.joined", snapshot=info.snapshot_id)
            sub_settings = backfill_settings(settings, pipelines, info.snapshot_id)
            bucket = ""
            if request.source == "export":
                info, bucket = await self._export_parts(dynamodb, s3, leases, table, info)
            runtime = await stack.enter_async_context(open_runtime(sub_settings))
            dlq = runtime.dead_letter_queue()
            await check_destinations(sub_settings, runtime.clients, runtime.routes("preflight"))
            # Every scan process has a limiter: one started without --max-read-units still
            # takes its share when another process of the backfill gave one.
            limiter = ReadUnitLimiter(math.inf) if request.source == "scan" else None
            budget = None
            if limiter is not None:
                budget = SharedReadBudget(
                    leases,
                    info.snapshot_id,
                    request.worker_id,
                    request.max_read_units,
                    limiter,
                    interval_s=min(1.0, settings.backfill.lease_s / 3),
                )
                await budget.refresh()
            total = int(table.get("ItemCount", 0)) or None
            workers = [f"{request.worker_id}-{index}" for index in range(max(1, request.workers))]
            readers: list[TableReader] = [
                ExportReader(s3, bucket, info, leases, worker, auto_commit=False)
                if request.source == "export"
                else TableReader(
                    dynamodb,
                    info,
                    leases,
                    worker,
                    limiter=limiter,
                    auto_commit=False,
                    page_items=request.page_items,
                )
                for worker in workers
            ]

            async def read_all() -> None:
                async with asyncio.TaskGroup() as group:
                    for reader in readers:
                        group.create_task(
                            self._work(reader, leases, info, key_names, runtime.routes, dlq)
                        )

            background = [show_progress(leases, info, total, self.view)]
            if budget is not None:
                background.append(budget.run())
            await run_alongside(read_all(), *background)
            if budget is not None:  # our share goes back to the others at their next beat
                await leases.drop_reader(info.snapshot_id, request.worker_id)
            parts = await leases.parts(info.snapshot_id)
            outcome = BackfillOutcome(snapshot_id=info.snapshot_id, source=info.source)
            if budget is not None and budget.lowest_rate != math.inf:
                outcome.lowest_read_share = budget.lowest_rate
            outcome.parts = len(parts)
            outcome.items = sum(part.items for part in parts)
            outcome.size = sum(part.size for part in parts)
            outcome.failed_parts = [part.failed for part in parts if part.failed]
            outcome.finished = bool(parts) and all(part.finished for part in parts)
            outcome.parked = sum(p.stats.parked for p in self._pipelines)
            outcome.read_here = sum(reader.stats.items for reader in readers)
            outcome.read_units = sum(reader.stats.read_units for reader in readers)
            times = [(r.stats.first_read_at, r.stats.last_read_at) for r in readers]
            if known := [t for pair in times for t in pair if t is not None]:
                outcome.read_window = (min(known), max(known))
            if outcome.finished:
                await leases.end(info)
            if self.view is not None:
                self.view.finish()
            outcome.elapsed_s = time.monotonic() - started
            return outcome

    async def _check_stitching(
        self, stack: AsyncExitStack, dynamodb: Any, snapshot_us: int, pipelines: tuple[str, ...]
    ) -> None:
        settings = self.settings
        now = self.now_us()
        replication = settings.pipelines.replication
        stream = stream_name(settings)
        retention: int | None
        if settings.stream.mode == "streams":
            retention = 24
            kinesis = None
        else:
            kinesis = await stack.enter_async_context(
                settings.aws.endpoints().aio_client("kinesis")
            )
            assert stream is not None  # the settings require a name or ARN in Kinesis mode
            with missing_means(
                BackfillError,
                f"stream {stream!r} does not exist (stream.name): the stream must "
                "carry the table's changes before a backfill",
            ):
                summary = await kinesis.describe_stream_summary(StreamName=stream)
            retention = int(summary["StreamDescriptionSummary"]["RetentionPeriodHours"])
        facts = StitchFacts(
            snapshot_us=snapshot_us,
            version_us=snapshot_us - self.margin_us,
            now_us=now,
            retention_hours=retention,
            initial_position=settings.stream.initial_position,
            tombstone_ttl_s=replication.tombstone_ttl_s if "replication" in pipelines else None,
        )
        check_static(facts)
        if kinesis is not None and stream is not None:
            shard_leases = await lease_table_leases(dynamodb, settings.lease_table)
            await check_consumer_position(kinesis, stream, shard_leases, facts)

    async def _export_parts(
        self,
        dynamodb: Any,
        s3: Any,
        leases: SnapshotLeases,
        table: dict[str, Any],
        info: SnapshotInfo,
    ) -> tuple[SnapshotInfo, str]:
        """Starts the export if the snapshot has none yet, waits for it, reads its
        manifests and records its data files as the parts."""
        api = self.export_api(dynamodb)
        if info.export_arn is None:
            info = await self._start_export(api, leases, table, info)
        assert info.export_arn is not None
        if self.request.export_arn and self.request.export_arn != info.export_arn:
            raise BackfillError(
                f"the running backfill of {info.table} uses export {info.export_arn}, not "
                f"{self.request.export_arn}: run it without --export-arn, or --abandon it"
            )
        description = await self._wait_for_export(api, info.export_arn, table["TableArn"])
        manifest = await load_manifest(s3, description)
        if manifest.table_arn != table["TableArn"]:
            raise BackfillError(
                f"export {manifest.export_arn} is of {manifest.table_arn}, not {table['TableArn']}"
            )
        if not info.parts:
            names = part_names(FILE_PREFIX, len(manifest.files))
            details = dict(zip(names, manifest.files, strict=True))
            info = await leases.set_export_parts(info, details, manifest.export_time_us)
        if self.view is not None:
            self.view.note(
                f"export {manifest.export_arn}: {len(manifest.files)} data files, "
                f"{manifest.item_count} items"
            )
        return info, manifest.bucket

    async def _start_export(
        self, api: ExportApi, leases: SnapshotLeases, table: dict[str, Any], info: SnapshotInfo
    ) -> SnapshotInfo:
        backfill = self.settings.backfill
        bucket = backfill.export_bucket or self.settings.pipelines.audit.bucket
        if not bucket:
            raise BackfillError(
                "no bucket for the export: set backfill.export_bucket (or pass --export-arn)"
            )
        export_time = datetime.fromtimestamp(info.created_us / 1_000_000, UTC)
        try:
            description = await api.start(
                table["TableArn"], bucket, backfill.export_prefix, export_time
            )
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code == "PointInTimeRecoveryUnavailableException":
                raise BackfillError(
                    f"table {info.table} has no point-in-time recovery, which exports need: "
                    f"enable it (aws dynamodb update-continuous-backups --table-name "
                    f"{info.table} --point-in-time-recovery-specification "
                    "PointInTimeRecoveryEnabled=true) or use --source scan"
                ) from None
            raise
        return await leases.set_export_arn(info, str(description["ExportArn"]))

    async def _wait_for_export(
        self, api: ExportApi, export_arn: str, table_arn: str
    ) -> dict[str, Any]:
        started = time.monotonic()
        while True:
            description = await api.describe(export_arn)
            check_export(description, table_arn)
            status = description.get("ExportStatus")
            if status == "COMPLETED":
                return description
            if self.view is not None:
                waited = time.monotonic() - started
                self.view.note(f"export {export_arn} is {status} ({waited:.0f} s)")
            log.info("backfill.export_waiting", export=export_arn, status=status)
            await asyncio.sleep(self.export_poll_s)

    async def _work(
        self,
        reader: TableReader,
        leases: SnapshotLeases,
        info: SnapshotInfo,
        key_names: list[str],
        build_routes: Callable[[str], list[Route]],
        dlq: Any,
    ) -> None:
        settings = self.settings
        stream = f"snapshot/{info.snapshot_id}"
        pipelines: dict[str, tuple[ShardPipeline, PartCheckpointer]] = {}
        region = settings.aws.region
        interval = min(settings.checkpoint_interval_s, 5.0)
        while True:
            try:
                async for page in reader.pages():
                    entry = pipelines.get(page.part)
                    if entry is None or entry[1].lease is not page.lease:
                        checkpointer = PartCheckpointer(leases, page.lease)
                        pipeline = ShardPipeline(
                            stream,
                            page.part,
                            build_routes(page.part),
                            dlq,
                            checkpointer,
                            checkpoint_interval_s=interval,
                        )
                        self._pipelines.append(pipeline)
                        entry = pipelines[page.part] = (pipeline, checkpointer)
                    pipeline, checkpointer = entry
                    batch = page_batch(
                        page,
                        key_names,
                        table=info.table,
                        region=region,
                        snapshot_id=info.snapshot_id,
                        version_us=page.scan_start_us - self.margin_us,
                        read_ms=int(time.time() * 1000),
                    )
                    last = batch.records[-1].sequence_number if batch.records else None
                    checkpointer.track(page, last)
                    await _renewing(leases, info, page.lease, pipeline.process(batch))
                    if page.last:
                        del pipelines[page.part]
                return
            except PartLost as lost:
                log.warning("backfill.part_lost", worker=reader.worker_id, reason=str(lost))
                pipelines.clear()
