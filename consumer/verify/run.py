"""`consumer verify`, the whole run. Constructors do no I/O; `Verify.run` does it all:

1. Checks (one line each, VerifyError): the pipelines, the source table, the replica (same key
   schema) and the index.
2. The source table, by the shared table reader: each page's items against each sink's copy.
3. Extras, from the sinks' side: the replica's live keys (a leased Scan, the same reader) and
   the index's, each checked against the table (keys only).
4. Every difference is re-checked after the consumer's lag (`consumer.verify.recheck`).
5. With `repair`, the differing items' current state goes through the sinks
   (`consumer.verify.repair`), and the repaired keys are verified again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import orjson
import structlog
from botocore.exceptions import ClientError

from consumer.pipeline.filters import RecordFilter
from consumer.pipeline.search.local_index import LocalSearchIndex
from consumer.pipeline.search.opensearch_sink import OpenSearchSink
from consumer.pipeline.sink import Sink
from consumer.service.assembly import open_runtime
from consumer.service.sinks import PipelineClients, only_pipelines
from consumer.settings import Settings
from consumer.snapshot.backfill import access_denied_line, enabled_among
from consumer.snapshot.progress import ProgressView, run_alongside, show_progress
from consumer.snapshot.rate import ReadUnitLimiter
from consumer.snapshot.records import snapshot_record_data
from consumer.snapshot.segments import SnapshotInfo, SnapshotLeases, wall_us
from consumer.snapshot.source_table import describe_source_table, lease_table_required
from consumer.snapshot.stitch import stream_name
from consumer.snapshot.table_reader import Page, TableReader
from consumer.verify.batch_get import batch_get
from consumer.verify.keys import KeyRef, WireItem, in_sample, key_ref
from consumer.verify.lag import consumer_lag_s
from consumer.verify.model import FIRST_KEYS, Kind, PipelineTally, VerifyError, VerifyReport
from consumer.verify.recheck import Candidate, classify, observe, settle, state_of
from consumer.verify.repair import Repairer
from consumer.verify.replica_side import ReplicaSide, key_schema
from consumer.verify.search_local import LocalIndexSide
from consumer.verify.search_opensearch import OpenSearchSide
from consumer.verify.sides import SinkSide
from consumer.verify.snapshot import EXTRAS_PURPOSE, SOURCE_PURPOSE, close_scan, open_scan

log = structlog.get_logger(__name__)

VERIFY_PIPELINES = ("replication", "search")


@dataclass(frozen=True)
class VerifyRequest:
    table: str
    pipelines: tuple[str, ...] = ()
    segments: int = 4
    workers: int = 1
    max_read_units: float | None = None
    sample: float = 1.0
    repair: bool = False
    recheck_after_s: float = 5.0
    measure_lag: bool = True
    worker_id: str = "verify"
    page_items: int | None = None
    first_keys: int = FIRST_KEYS  # keys reported per kind and pipeline


def chosen_pipelines(settings: Settings, requested: tuple[str, ...]) -> tuple[str, ...]:
    pipelines = VERIFY_PIPELINES
    enabled = enabled_among(settings, pipelines, requested, pipelines, VerifyError)
    chosen = tuple(name for name in pipelines if name in (requested or enabled))
    if not chosen:
        raise VerifyError("no pipeline to verify: enable pipelines.replication or pipelines.search")
    return chosen


def denied_line(error: ClientError) -> str:
    code = error.response.get("Error", {}).get("Code", "")
    return (
        f"missing permission for {error.operation_name} ({code}): grant the task role the "
        "TaskVerifyPolicy (and the pipelines' policies) of infra/cloudformation/service.yaml"
    )


@dataclass
class Verify:
    settings: Settings
    request: VerifyRequest
    _: KW_ONLY
    view: ProgressView | None = None
    now_us: Callable[[], int] = wall_us
    report: VerifyReport | None = field(default=None, init=False)
    # notes: scans this process joined rather than began
    _joined: list[str] = field(default_factory=list, init=False)

    async def run(self) -> VerifyReport:
        try:
            return await self._run()
        except ClientError as error:
            if access_denied_line(error) is None:
                raise
            raise VerifyError(denied_line(error)) from None

    async def _run(self) -> VerifyReport:
        settings, request = self.settings, self.request
        started = time.monotonic()
        pipelines = chosen_pipelines(settings, request.pipelines)
        if not 0 < request.sample <= 1:
            raise VerifyError(f"--sample must be above 0 and at most 1, got {request.sample}")
        sub_settings = only_pipelines(settings, pipelines)  # the sinks a repair writes through
        async with AsyncExitStack() as stack:
            endpoints = settings.aws.endpoints()
            dynamodb = await stack.enter_async_context(endpoints.aio_client("dynamodb"))
            table = await describe_source_table(
                dynamodb, self.request.table, self.settings.aws.region, VerifyError
            )
            schema = key_schema(table)
            key_names = tuple(name for name, _, _ in schema)
            key_types = {name: attribute_type for name, _, attribute_type in schema}
            runtime = await stack.enter_async_context(open_runtime(sub_settings))
            routes = runtime.routes("verify")
            sinks: dict[str, Sink] = {route.sink.name: route.sink for route in routes}
            filters = {route.sink.name: route.record_filter for route in routes}
            clients = runtime.clients
            sides = self._sides(table, key_names, key_types, sinks, clients)
            for side in sides.values():
                stack.push_async_callback(side.aclose)
                await side.check()
            leases = SnapshotLeases(
                dynamodb, settings.lease_table, lease_s=settings.backfill.lease_s
            )
            limiter = ReadUnitLimiter(request.max_read_units) if request.max_read_units else None
            info = await self._open(leases, SOURCE_PURPOSE, request.table, pipelines)
            report = VerifyReport(
                table=request.table,
                snapshot_id=info.snapshot_id,
                pipelines={name: PipelineTally(name, request.first_keys) for name in pipelines},
                sampled=request.sample,
            )
            replica = sides.get("replication")
            if isinstance(replica, ReplicaSide) and replica.transform is not None:
                report.notes.append(
                    "replication has a transform: only the presence of items is compared"
                )
            candidates: dict[tuple[str, str], Candidate] = {}

            async def read_source(refs: Sequence[KeyRef]) -> dict[str, WireItem]:
                return await batch_get(dynamodb, request.table, refs, key_names, limiter=limiter)

            # 2. The table's items against each sink.
            readers = [
                TableReader(
                    dynamodb,
                    info,
                    leases,
                    f"{request.worker_id}-{index}",
                    limiter=limiter,
                    auto_commit=True,
                    page_items=request.page_items,
                )
                for index in range(max(1, request.workers))
            ]

            async def compare_all() -> None:
                async with asyncio.TaskGroup() as group:
                    for reader in readers:
                        group.create_task(
                            self._compare_pages(
                                reader.pages(), key_names, sides, filters, report, candidates
                            )
                        )

            total = int(table.get("ItemCount", 0)) or None
            await run_alongside(compare_all(), show_progress(leases, info, total, self.view))
            if self.view is not None:
                self.view.finish()
            report.items_read = sum(reader.stats.items for reader in readers)
            await close_scan(leases, info)
            # 3. Extras, from the sinks' side.
            for name, side in sides.items():
                if isinstance(side, ReplicaSide):
                    extras = await self._open(leases, EXTRAS_PURPOSE, side.table, pipelines)
                    side.pages = TableReader(
                        clients.replica_dynamodb,
                        extras,
                        leases,
                        f"{request.worker_id}-extras",
                        auto_commit=True,
                        page_items=request.page_items,
                    ).pages()
                    await self._find_extras(name, side, read_source, candidates)
                    await close_scan(leases, extras)
                else:
                    await self._find_extras(name, side, read_source, candidates)
                foreign = getattr(side, "foreign", 0)
                if foreign:
                    report.notes.append(
                        f"{name}: {foreign} live documents have keys that are not this "
                        "table's (another table's documents in the index?)"
                    )
            # 4. Re-check after the consumer's lag.
            wait_s = await self._recheck_wait(stack, dynamodb)
            report.recheck_after_s = wait_s
            settled = await settle(list(candidates.values()), sides, read_source, wait_s)
            left = {(c.pipeline, c.ref.doc_id) for c in (*settled.confirmed, *settled.unsettled)}
            for key, candidate in candidates.items():
                if key not in left and candidate.first_kind is not Kind.EXTRA:
                    report.pipelines[candidate.pipeline].counts[Kind.EQUAL] += 1
            for candidate in sorted(settled.confirmed, key=lambda c: c.ref.doc_id):
                report.pipelines[candidate.pipeline].add(candidate.kind, candidate.ref.text)
            for candidate in settled.unsettled:
                report.pipelines[candidate.pipeline].unsettled += 1
            # 5. Repair, then verify the repaired keys again.
            if request.repair and settled.confirmed:
                await self._repair(
                    settled.confirmed, sinks, sides, dynamodb, key_names, read_source, report
                )
            report.notes.extend(self._joined)
            report.elapsed_s = time.monotonic() - started
            self.report = report
            return report

    def _sides(
        self,
        table: dict[str, Any],
        key_names: tuple[str, ...],
        key_types: dict[str, str],
        sinks: dict[str, Sink],
        clients: PipelineClients,
    ) -> dict[str, SinkSide]:
        sides: dict[str, SinkSide] = {}
        if "replication" in sinks:
            replica = self.settings.pipelines.replication
            assert replica.table is not None  # the settings require it with the pipeline on
            sides["replication"] = ReplicaSide(
                clients.replica_dynamodb,
                replica.table,
                table,
                include=replica.include_attributes,
                exclude=replica.exclude_attributes,
                transform=replica.transform,
            )
        search = sinks.get("search")
        if isinstance(search, OpenSearchSink):
            sides["search"] = OpenSearchSide(search.settings, key_names, key_types)
        elif isinstance(search, LocalSearchIndex):
            sides["search"] = LocalIndexSide(search.settings.file, key_names, key_types)
        return sides

    async def _open(
        self, leases: SnapshotLeases, purpose: str, table: str, pipelines: tuple[str, ...]
    ) -> SnapshotInfo:
        now_us = self.now_us()
        with lease_table_required(self.settings.lease_table, VerifyError):
            info = await open_scan(
                leases,
                purpose=purpose,
                table=table,
                segments=self.request.segments,
                pipelines=pipelines,
                now_us=now_us,
            )
        if info.created_us != now_us:
            self._joined.append(
                f"joined the running {purpose} scan {info.snapshot_id} of {table}: this "
                "process reports only the items it read itself"
            )
        return info

    async def _compare_pages(
        self,
        pages: AsyncIterator[Page],
        key_names: tuple[str, ...],
        sides: dict[str, SinkSide],
        filters: dict[str, RecordFilter],
        report: VerifyReport,
        candidates: dict[tuple[str, str], Candidate],
    ) -> None:
        async for page in pages:
            seen_at = time.monotonic()
            entries = []
            for item in page.items:
                ref = key_ref(item, key_names)
                if in_sample(ref.doc_id, self.request.sample):
                    entries.append((ref, item))
            for name, side in sides.items():
                record_filter = filters.get(name)
                mine = entries
                if record_filter:
                    mine = [e for e in entries if self._passes(record_filter, e[1], key_names)]
                    report.pipelines[name].not_compared += len(entries) - len(mine)
                if not mine:
                    continue
                copies = await side.fetch([ref for ref, _ in mine])
                for ref, item in mine:
                    kind = classify(side, item, copies.get(ref.doc_id))
                    if kind is Kind.EQUAL:
                        report.pipelines[name].counts[Kind.EQUAL] += 1
                    else:
                        candidate = Candidate(name, ref, kind, state_of(item), seen_at)
                        candidates[(name, ref.doc_id)] = candidate

    def _passes(
        self, record_filter: RecordFilter, item: WireItem, key_names: tuple[str, ...]
    ) -> bool:
        """Whether the pipeline's filters let the item's current state through (as the
        MODIFY record a snapshot of it would be)."""
        data = snapshot_record_data(
            item,
            key_names,
            table=self.request.table,
            region=self.settings.aws.region,
            snapshot_id="verify",
            part="verify",
            ordinal=0,
            version_us=0,
        )
        return record_filter.matches(orjson.loads(data))

    async def _find_extras(
        self,
        name: str,
        side: SinkSide,
        read_source: Callable[[Sequence[KeyRef]], Any],
        candidates: dict[tuple[str, str], Candidate],
    ) -> None:
        async for refs in side.live_keys():
            sampled = [
                ref
                for ref in refs
                if in_sample(ref.doc_id, self.request.sample)
                and (name, ref.doc_id) not in candidates
            ]
            if not sampled:
                continue
            seen_at = time.monotonic()
            seen = await observe(sampled, side, read_source)
            for ref, kind, state in seen:
                if kind is Kind.EXTRA:
                    candidates[(name, ref.doc_id)] = Candidate(name, ref, kind, state, seen_at)

    async def _recheck_wait(self, stack: AsyncExitStack, dynamodb: Any) -> float:
        wait_s = self.request.recheck_after_s
        stream = self.settings.stream
        if not self.request.measure_lag or stream.mode == "streams":
            return wait_s
        name = stream_name(self.settings)
        if not name:
            return wait_s
        try:
            kinesis = await stack.enter_async_context(
                self.settings.aws.endpoints().aio_client("kinesis")
            )
            lag = await consumer_lag_s(dynamodb, kinesis, name, self.settings.lease_table)
        except (ClientError, OSError) as error:
            log.warning("verify.lag_unknown", error=str(error), wait_s=wait_s)
            return wait_s
        log.info("verify.consumer_lag", lag_s=round(lag, 1))
        return max(wait_s, lag + 1.0)

    async def _repair(
        self,
        confirmed: list[Candidate],
        sinks: dict[str, Sink],
        sides: dict[str, SinkSide],
        dynamodb: Any,
        key_names: tuple[str, ...],
        read_source: Callable[[Sequence[KeyRef]], Any],
        report: VerifyReport,
    ) -> None:
        repairer = Repairer(
            dynamodb,
            self.request.table,
            key_names,
            self.settings.aws.region,
            f"repair-{report.snapshot_id}",
        )
        again: list[Candidate] = []
        for name, tally in report.pipelines.items():
            refs = [c.ref for c in confirmed if c.pipeline == name]
            outcome = await repairer.apply(sinks[name], refs)
            tally.repaired = len(outcome.repaired)
            tally.not_repaired = [f"{ref.text}: {reason}" for ref, reason in outcome.failed]
            now = time.monotonic()
            seen = await observe(outcome.repaired, sides[name], read_source)
            again.extend(
                Candidate(name, ref, kind, state, now)
                for ref, kind, state in seen
                if kind is not Kind.EQUAL
            )
        settled = await settle(again, sides, read_source, 0.0)
        report.after_repair = {name: 0 for name in report.pipelines}
        for candidate in settled.confirmed:
            report.after_repair[candidate.pipeline] += 1
        for name, tally in report.pipelines.items():
            report.after_repair[name] += len(tally.not_repaired)
