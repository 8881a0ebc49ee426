"""Stream replay: the chosen pipelines fed from the Kinesis stream, under the replay's own
lease table, by one or more replay workers (docs/replay.md, "From the stream").

Wired by `consumer.service.assembly` as the worker is, except: `request.shard_lister` lists only
the window's shards, reads poll (GetRecords: a replay is bound by throughput, and EFO would
take one of the stream's 20 consumer slots), and each leased shard runs
`shard_task.replay_shard`. Every worker scans the lease table once per `poll_s` and leaves
when every shard is settled (`status.is_complete`); the last one out deletes the table unless
asked to keep it. An interrupted replay keeps it, and the same command resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from checkpoints import Checkpoint, LeaseHandle
from checkpoints.discovery import ShardInfo
from consumer.aws.errors import error_code
from consumer.aws.shards import kinesis_shards
from consumer.pipeline.decoders import decode_kinesis
from consumer.pipeline.processor import ShardPipeline
from consumer.replay.progress import StateListener
from consumer.replay.request import (
    ReplayRequest,
    record_window,
    replay_settings,
    shard_lister,
)
from consumer.replay.shard_task import replay_shard
from consumer.replay.status import (
    LocalTotals,
    ReplayMarks,
    ReplayOutcome,
    ReplayState,
    ShardStatus,
    is_complete,
)
from consumer.replay.window import HOUR_MS, ChangeTimeFilter, ReplayWindow, human_span, iso_ms
from consumer.service.assembly import lease_settings, open_runtime
from consumer.settings import Settings
from consumer.sources.lean import install_lean_get_records, kinesis_records, lean_body
from consumer.sources.polling import PollingOptions, PollingReader

log = structlog.get_logger(__name__)

# GetRecords calls per shard spent looking for the oldest record (a TRIM_HORIZON iterator may
# return empty batches while it walks over expired data).
_OLDEST_PROBES = 5


@dataclass(frozen=True)
class StreamFacts:
    """DescribeStreamSummary, plus the arrival time of the oldest record (if looked up)."""

    name: str
    arn: str
    retention_hours: int
    created_ms: int
    on_demand: bool
    oldest_arrival_ms: int | None = None


async def describe_stream(client: Any, name: str | None, arn: str | None) -> StreamFacts:
    """DescribeStreamSummary of the stream named by `name` or `arn`."""
    ident = {"StreamARN": arn} if arn else {"StreamName": name}
    summary = (await client.describe_stream_summary(**ident))["StreamDescriptionSummary"]
    mode = summary.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED")
    created = summary.get("StreamCreationTimestamp")
    return StreamFacts(
        name=str(summary["StreamName"]),
        arn=str(summary["StreamARN"]),
        retention_hours=int(summary.get("RetentionPeriodHours", 24)),
        created_ms=round(created.timestamp() * 1000) if created is not None else 0,
        on_demand=mode == "ON_DEMAND",
    )


async def oldest_arrival_ms(client: Any, stream_arn: str) -> int | None:
    """The arrival time of the oldest record in the stream, None if none was found quickly.

    Reads the first record of every shard open at the trim horizon (a few GetRecords calls
    each, Limit 1)."""
    oldest: int | None = None
    at_trim_horizon = {"Type": "AT_TRIM_HORIZON"}
    for shard in await kinesis_shards(client, {"StreamARN": stream_arn}, at_trim_horizon):
        response = await client.get_shard_iterator(
            StreamARN=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )
        iterator = response.get("ShardIterator")
        for _ in range(_OLDEST_PROBES):
            if not iterator:
                break
            body = lean_body(await client.get_records(ShardIterator=iterator, Limit=1))
            records = kinesis_records(body.get("Records") or [])
            if records:
                arrival = records[0].arrival_ms
                oldest = arrival if oldest is None else min(oldest, arrival)
                break
            if not body.get("MillisBehindLatest"):
                break  # at the tip: the shard is empty
            iterator = body.get("NextShardIterator")
    return oldest


@dataclass(frozen=True)
class HorizonCheck:
    """Where the replay really starts (`start_ms`, for progress), and what to tell the user."""

    start_ms: int
    warning: str | None = None
    note: str | None = None


def check_horizon(from_ms: int | None, facts: StreamFacts, now_ms: int) -> HorizonCheck:
    """Compares `--from` with what the stream can still hold: before the trim horizon, a
    warning with the missing span; before the stream was created, a note."""
    horizon_ms = now_ms - facts.retention_hours * HOUR_MS
    first_ms = max(horizon_ms, facts.created_ms)
    if facts.oldest_arrival_ms is not None:
        first_ms = max(first_ms, facts.oldest_arrival_ms)
    if from_ms is None:
        return HorizonCheck(first_ms)
    if from_ms < horizon_ms:
        oldest = (
            f"; its oldest record arrived {iso_ms(facts.oldest_arrival_ms)}"
            if facts.oldest_arrival_ms is not None
            else ""
        )
        return HorizonCheck(
            first_ms,
            warning=(
                f"--from {iso_ms(from_ms)} is before the trim horizon of stream {facts.name} "
                f"(retention {facts.retention_hours} h, so records that arrived before "
                f"{iso_ms(horizon_ms)} are gone{oldest}): starting at the horizon; "
                f"{human_span(horizon_ms - from_ms)} of the requested history is missing "
                "(--source archive replays older history from the audit archive)"
            ),
        )
    if from_ms < facts.created_ms:
        return HorizonCheck(
            first_ms,
            note=(
                f"--from {iso_ms(from_ms)} is before stream {facts.name} was created "
                f"({iso_ms(facts.created_ms)}): starting at its first record"
            ),
        )
    return HorizonCheck(from_ms)


@dataclass(frozen=True)
class StreamPlan:
    """What the replay found out about the stream before starting."""

    facts: StreamFacts
    horizon: HorizonCheck
    shards: tuple[ShardInfo, ...]

    @property
    def shard_ids(self) -> frozenset[str]:
        return frozenset(shard.shard_id for shard in self.shards)


async def plan_stream_replay(settings: Settings, window: ReplayWindow, now_ms: int) -> StreamPlan:
    """Describes the stream, lists the window's shards and checks `--from` against the trim
    horizon (reading the oldest record only when `--from` is at or before the horizon)."""
    stream = settings.stream
    async with settings.aws.endpoints().aio_client("kinesis") as client:
        install_lean_get_records(client)
        facts = await describe_stream(client, stream.name, stream.arn)
        horizon_ms = now_ms - facts.retention_hours * HOUR_MS
        if window.from_ms is None or window.from_ms < horizon_ms:
            facts = replace(facts, oldest_arrival_ms=await oldest_arrival_ms(client, facts.arn))
        shards = await shard_lister(client, facts.arn, window.from_ms).list_shards()
    return StreamPlan(
        facts=facts,
        horizon=check_horizon(window.from_ms, facts, now_ms),
        shards=tuple(shards),
    )


class StreamReplay:
    """One replay worker. Constructing it does no I/O; `run(stop)` replays until the whole
    replay is complete (all workers' shards) or `stop` is set."""

    def __init__(
        self,
        settings: Settings,
        request: ReplayRequest,
        plan: StreamPlan,
        *,
        worker_id: str | None = None,
        on_state: StateListener | None = None,
        poll_s: float | None = None,
        keep_lease_table: bool = False,
        window_to_given: bool | None = True,
    ) -> None:
        """`poll_s`: how often the lease table is read for completion and progress (default:
        the lease take interval, within 0.5-2 s; each read is a scan of the whole table)."""
        self.settings = replay_settings(settings, request)
        self.request = request
        self.plan = plan
        self.worker_id = worker_id
        self._on_state = on_state or (lambda state: None)
        take_s = self.settings.leases.take_interval_s
        self._poll_s = poll_s if poll_s is not None else min(2.0, max(0.5, take_s))
        self._keep_lease_table = keep_lease_table
        # How the window is recorded on a new lease table (request.py); None: not by us
        # (an extra worker process: the replay that started it records it).
        self._window_to_given = window_to_given
        self._last_state = ReplayState()
        self.totals = LocalTotals()

    async def run(self, stop: asyncio.Event) -> ReplayOutcome:
        settings = self.settings
        window = self.request.window
        arn = self.plan.facts.arn
        async with open_runtime(settings) as runtime:
            kinesis = await runtime.client("kinesis")
            install_lean_get_records(kinesis)
            reader = PollingReader(
                kinesis, arn, PollingOptions(interval_s=settings.stream.polling_interval_s)
            )
            lister = shard_lister(await runtime.client("kinesis"), arn, window.from_ms)
            decoder = ChangeTimeFilter(decode_kinesis, window)
            start = Checkpoint.trim_horizon()
            if window.from_ms is not None:
                start = Checkpoint.at_timestamp(window.from_ms)
            leases = lease_settings(settings, arn).model_copy(
                update={"initial_position": start, "worker_id": self.worker_id}
            )

            def make_pipeline(handle: LeaseHandle) -> ShardPipeline:
                pipeline = runtime.pipeline(
                    arn,
                    handle.shard_id,
                    handle,
                    routes=runtime.routes(handle.shard_id),
                    decoder=decoder,
                )
                pipelines.append(pipeline)
                return pipeline

            pipelines: list[ShardPipeline] = []

            async def process(handle: LeaseHandle) -> None:
                await replay_shard(
                    handle, reader, make_pipeline, marks, window, settings.stream.read_ahead_batches
                )

            coordinator = await runtime.coordinator(
                leases, lister, process, worker_id=self.worker_id
            )
            dynamodb = await runtime.client("dynamodb")
            if self._window_to_given is not None:  # the lease table exists: tag it
                await record_window(
                    dynamodb, leases.lease_table, self.request, self._window_to_given
                )
            marks = ReplayMarks(dynamodb, leases.lease_table)
            log.info(
                "replay.start",
                replay=self.request.name,
                stream=arn,
                pipelines=list(self.request.pipelines),
                lease_table=leases.lease_table,
                shards=len(self.plan.shard_ids),
            )
            async with coordinator:
                complete = await self._watch(marks, stop)
            # The table after our coordinator left; the last state seen if another worker has
            # deleted it meanwhile (it does so only once the replay is complete).
            state = await marks.state_if_exists() or self._last_state
            for pipeline in pipelines:
                self.totals.add(pipeline)
            self.totals.skipped_after_to = decoder.skipped_after_to
            complete = complete or is_complete(state, window.to_ms, self.plan.shard_ids)
            deleted = False
            if complete and not self._keep_lease_table:
                deleted = await delete_lease_table(dynamodb, leases.lease_table, state)
            log.info(
                "replay.stopped",
                complete=complete,
                records=self.totals.records,
                lease_table_deleted=deleted,
            )
            return ReplayOutcome(
                complete=complete,
                interrupted=stop.is_set() and not complete,
                state=state,
                local=self.totals,
                lease_table_deleted=deleted,
            )

    async def _watch(self, marks: ReplayMarks, stop: asyncio.Event) -> bool:
        """Polls the lease table until the replay is complete (True) or `stop` is set."""
        to_ms = self.request.window.to_ms
        while not stop.is_set():
            try:
                state = await marks.state_if_exists()
            except (ClientError, BotoCoreError) as error:
                log.warning("replay.state_unavailable", error=str(error))
            else:
                if state is None:
                    log.info("replay.lease_table_gone", table=marks.table_name)
                    return True
                self._last_state = state
                self._on_state(with_expected(state, self.plan.shard_ids))
                if is_complete(state, to_ms, self.plan.shard_ids):
                    return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._poll_s)
        return False


def with_expected(state: ReplayState, shard_ids: frozenset[str]) -> ReplayState:
    """`state` plus the listed shards that have no lease yet (for the progress display)."""
    missing = shard_ids - {shard.shard_id for shard in state.shards}
    if not missing:
        return state
    shards = sorted((*state.shards, *map(ShardStatus, missing)), key=attrgetter("shard_id"))
    return ReplayState(tuple(shards), state.workers)


async def delete_lease_table(client: Any, name: str, state: ReplayState) -> bool:
    """The last worker out deletes the lease table; while other workers still have a
    heartbeat item, it is left to them. True if deleted here."""
    if state.workers:
        log.info("replay.lease_table_kept", table=name, other_workers=sorted(state.workers))
        return False
    try:
        await client.delete_table(TableName=name)
    except ClientError as error:
        if error_code(error) not in ("ResourceNotFoundException", "ResourceInUseException"):
            raise
        return False
    return True


async def delete_idle_lease_table(settings: Settings, name: str) -> bool:
    """Deletes a replay's lease table if no worker has a heartbeat item in it any more."""
    async with settings.aws.endpoints().aio_client("dynamodb") as client:
        state = await ReplayMarks(client, name).state_if_exists()
        return state is not None and await delete_lease_table(client, name, state)
