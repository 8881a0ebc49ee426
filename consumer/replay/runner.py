"""A whole replay as the command line runs it: check the request, look at the source, then
dry-run or replay with progress, and report. Returns the exit code:

0 complete (or a dry run), 1 the replay failed (a shard stopped, an AWS call failed, a worker
process failed), 2 bad input, 130 interrupted (the lease table is kept: run the printed
command to resume).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.errors import call_failed
from consumer.replay.archive import ArchiveReplay, find_table, list_objects
from consumer.replay.dry_run import dry_run_stream, render
from consumer.replay.progress import ProgressReporter
from consumer.replay.request import (
    RecordedWindow,
    ReplayRequest,
    Source,
    check_workers,
    reconcile,
    recorded_window,
    replay_name,
    select_pipelines,
)
from consumer.replay.status import ReplayOutcome, stopped_shards
from consumer.replay.stream import StreamReplay, delete_idle_lease_table, plan_stream_replay
from consumer.replay.window import (
    HOUR_MS,
    ReplayError,
    ReplayInputError,
    ReplayWindow,
    iso_ms,
    window_from_input,
)
from consumer.replay.workers import (
    WorkerExit,
    spawn_workers,
    stop_workers,
    wait_workers,
    window_args,
    worker_argv,
)
from consumer.settings import Settings

# How long extra workers get to notice by themselves that the replay is complete.
WORKER_GRACE_S = 3.0


@dataclass(frozen=True)
class ReplayOptions:
    """The command line, as typed (checked by `run_replay`)."""

    from_text: str
    to_text: str | None = None
    pipelines: tuple[str, ...] | None = None
    workers: int = 1
    source: Source = Source.STREAM
    dry_run: bool = False
    replay_name: str | None = None
    table: str | None = None
    archive_bucket: str | None = None
    archive_prefix: str | None = None
    grace_s: float = 60.0
    progress: str = "auto"  # auto | bar | log | none
    keep_lease_table: bool = False
    accept_expired_tombstones: bool = False
    worker_process: bool = False  # started by another replay's --workers
    config: Path | None = None


@dataclass
class Console:
    """Where the report goes: results on `out`, warnings and errors on `err`."""

    out: TextIO
    err: TextIO

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def warn(self, line: str) -> None:
        print(f"consumer replay: warning: {line}", file=self.err, flush=True)


def reporter_for(requested: str, out: TextIO, start_ms: int, to_ms: int) -> ProgressReporter:
    mode = progress_mode(requested, out)
    width = shutil.get_terminal_size((100, 24)).columns if mode == "bar" else 100
    return ProgressReporter(mode, start_ms, to_ms, out=out, width=width)


def progress_mode(requested: str, out: TextIO) -> str:
    if requested != "auto":
        return requested
    isatty = getattr(out, "isatty", None)
    return "bar" if isatty is not None and isatty() else "log"


def check_tombstones(
    settings: Settings,
    request: ReplayRequest,
    options: ReplayOptions,
    start_ms: int,
    now_ms: int,
    console: Console,
) -> None:
    """A replay into replication that reads changes older than the replica's tombstones asks
    for --accept-expired-tombstones (ReplayInputError naming the span at risk otherwise)."""
    if "replication" not in request.pipelines or options.worker_process:
        return
    risk = expired_tombstones(start_ms, now_ms, settings.pipelines.replication.tombstone_ttl_s)
    if risk is None:
        return
    if not options.accept_expired_tombstones:
        raise ReplayInputError(f"{risk}; add --accept-expired-tombstones to go on")
    console.warn(risk)


def expired_tombstones(start_ms: int, now_ms: int, ttl_s: int) -> str | None:
    """What a replay into replication risks when it reads changes from before the replica's
    tombstones still exist (None when it does not): a delete leaves a tombstone for `ttl_s`,
    and only that keeps an older replayed change from bringing the item back."""
    expired_before = now_ms - ttl_s * 1000
    if start_ms >= expired_before:
        return None
    since = iso_ms(start_ms)
    return (
        f"the replica's tombstones last pipelines.replication.tombstone_ttl_s = {ttl_s} s: items "
        f"deleted between {since} and {iso_ms(expired_before)} have none left, and a replay "
        f"from {since} can bring them back"
    )


def build_request(
    settings: Settings, options: ReplayOptions, now_ms: int
) -> tuple[ReplayRequest, list[str]]:
    """The checked request and the warnings to show; ReplayInputError for bad input."""
    window = window_from_input(
        options.from_text, options.to_text, now_ms, round(options.grace_s * 1000)
    )
    warnings = check_workers(options.workers, options.source)
    if options.source is Source.STREAM:
        if settings.stream.mode == "streams":
            raise ReplayInputError(
                "replay reads a Kinesis stream, and the settings are in streams mode "
                "(DynamoDB Streams has no AT_TIMESTAMP and keeps 24 h): use --source archive"
            )
        if not (settings.stream.name or settings.stream.arn):
            raise ReplayInputError("set stream.name or stream.arn (the stream to replay)")
    pipelines = select_pipelines(settings, options.pipelines, options.source)
    name = replay_name(settings, window.from_ms, options.replay_name)
    workers = 1 if options.source is Source.ARCHIVE else options.workers
    return ReplayRequest(window, pipelines, options.source, name, workers), warnings


async def run_replay(
    settings: Settings,
    options: ReplayOptions,
    stop: asyncio.Event,
    console: Console | None = None,
    now_ms: int | None = None,
) -> int:
    """Runs the replay the options ask for; see the module docstring for the exit codes."""
    console = console or Console(sys.stdout, sys.stderr)
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    try:
        request, warnings = build_request(settings, options, now_ms)
        for warning in warnings:
            console.warn(warning)
        if request.source is Source.ARCHIVE:
            return await _archive(settings, options, request, stop, console)
        return await _stream(settings, options, request, stop, console, now_ms)
    except ReplayInputError as error:
        print(f"consumer replay: {error}", file=console.err, flush=True)
        return 2
    except ReplayError as error:
        print(f"consumer replay: {error}", file=console.err, flush=True)
        return 1
    except ClientError as error:
        print(f"consumer replay: {call_failed(error)}", file=console.err, flush=True)
        return 1
    except BotoCoreError as error:
        print(f"consumer replay: AWS call failed: {error}", file=console.err, flush=True)
        return 1


async def _same_window(
    settings: Settings, request: ReplayRequest, options: ReplayOptions, console: Console
) -> ReplayRequest:
    """The request to run, given the window recorded on an existing lease table of this name
    (consumer.replay.request: a rerun only ever continues the same window)."""
    if options.worker_process:
        return request  # started by the replay that checked and recorded the window
    async with settings.aws.endpoints().aio_client("dynamodb") as client:
        found = await recorded_window(client, request.lease_table)
    if found is None:
        return request
    resumed = reconcile(request, found[1], explicit_to=options.to_text is not None)
    console.say(f"resuming replay {request.name}: {RecordedWindow.of(resumed).describe()}")
    return resumed


async def _stream(
    settings: Settings,
    options: ReplayOptions,
    request: ReplayRequest,
    stop: asyncio.Event,
    console: Console,
    now_ms: int,
) -> int:
    request = await _same_window(settings, request, options, console)
    window = request.window
    plan = await plan_stream_replay(settings, window, now_ms)
    if stop.is_set():
        return 130  # stopped while starting (an extra worker of a replay that is over)
    check_tombstones(settings, request, options, plan.horizon.start_ms, now_ms, console)
    if not options.worker_process:
        if plan.horizon.warning:
            console.warn(plan.horizon.warning)
        if plan.horizon.note:
            console.say(plan.horizon.note)
    reporter = reporter_for(options.progress, console.out, plan.horizon.start_ms, window.to_ms)
    if options.dry_run:
        result = await dry_run_stream(settings, window, plan, reporter.update)
        reporter.finish()
        for line in render(result, window, settings.aws.region):
            console.say(line)
        return 0
    if not options.worker_process:
        console.say(
            f"replay {request.name}: {len(plan.shards)} shards of {plan.facts.name} into "
            f"{', '.join(request.pipelines)}, {_span(window)}"
        )
    processes = []
    if request.workers > 1:
        processes = spawn_workers(worker_argv(request, options.config), request.workers - 1)
    started = time.monotonic()
    replay = StreamReplay(
        settings,
        request,
        plan,
        on_state=reporter.update,
        keep_lease_table=options.keep_lease_table or bool(processes),
        window_to_given=None if options.worker_process else options.to_text is not None,
    )
    try:
        outcome = await replay.run(stop)
    except BaseException:
        stop_workers(processes)  # no orphans: this worker cannot go on
        raise
    finally:
        reporter.finish()
        if stop.is_set():
            stop_workers(processes)
    exits = await asyncio.to_thread(
        wait_workers, processes, WORKER_GRACE_S, settings.stop_timeout_s + 30
    )
    if processes and outcome.complete and not options.keep_lease_table:
        outcome.lease_table_deleted = await delete_idle_lease_table(
            replay.settings, request.lease_table
        )
    if options.worker_process:
        return _exit_code(outcome, exits)
    _report(console, request, outcome, time.monotonic() - started, exits)
    if outcome.interrupted:
        console.say(f"resume with: {_resume_command(request, options)}")
    return _exit_code(outcome, exits)


async def _archive(
    settings: Settings,
    options: ReplayOptions,
    request: ReplayRequest,
    stop: asyncio.Event,
    console: Console,
) -> int:
    audit = settings.pipelines.audit
    bucket = options.archive_bucket or audit.bucket
    if not bucket:
        raise ReplayInputError(
            "--source archive needs the audit bucket: set pipelines.audit.bucket "
            "or pass --archive-bucket"
        )
    prefix = audit.prefix if options.archive_prefix is None else options.archive_prefix
    window = request.window
    async with settings.aws.endpoints().aio_client("s3") as s3:
        location = await find_table(s3, bucket, prefix, options.table)
        objects = await list_objects(s3, location, window)
    if not objects:
        console.warn(
            f"no audit objects in s3://{bucket}/{location.table_prefix} for {_span(window)}"
        )
    start_ms = window.from_ms
    if start_ms is None:
        start_ms = objects[0].hour * HOUR_MS if objects else window.to_ms - 1
    check_tombstones(settings, request, options, start_ms, int(time.time() * 1000), console)
    reporter = reporter_for(options.progress, console.out, start_ms, window.to_ms)
    replay = ArchiveReplay(settings, request, location, objects, on_state=reporter.update)
    if options.dry_run:
        result = await replay.count(stop)
        reporter.finish()
        for line in render(result, window, settings.aws.region):
            console.say(line)
        return 0
    console.say(
        f"replay from the archive s3://{bucket}/{location.table_prefix}: {len(objects)} objects "
        f"into {', '.join(request.pipelines)}, {_span(window)}"
    )
    started = time.monotonic()
    try:
        outcome = await replay.run(stop)
    finally:
        reporter.finish()
    totals = replay.totals
    _report(console, request, outcome, time.monotonic() - started, [])
    console.say(
        f"  archive: {totals.objects} objects, {totals.lines:,} lines, "
        f"{totals.duplicates:,} duplicates skipped, {totals.outside_window:,} outside the window"
        + (f", {totals.bad_lines} unreadable lines" if totals.bad_lines else "")
    )
    if outcome.interrupted:
        console.say("interrupted: an archive replay starts over when run again")
    return _exit_code(outcome, [])


def _span(window: ReplayWindow) -> str:
    start = "the oldest record" if window.from_ms is None else iso_ms(window.from_ms)
    return f"changes from {start} to {iso_ms(window.to_ms)}"


def _report(
    console: Console,
    request: ReplayRequest,
    outcome: ReplayOutcome,
    elapsed_s: float,
    workers: list[WorkerExit],
) -> None:
    local = outcome.local
    verdict = (
        "complete" if outcome.complete else ("interrupted" if outcome.interrupted else "incomplete")
    )
    what = f"replay {request.name}" if request.source is Source.STREAM else "archive replay"
    applied = local.changes - local.parked
    by = "this process" if request.workers > 1 else "this run"
    console.say(
        f"{what} {verdict} in {elapsed_s:.1f} s: {by} read {local.records:,} records, "
        f"applied {applied:,} changes, skipped {local.skipped_after_to:,} made after --to"
    )
    total = outcome.state.records
    if request.source is Source.STREAM and total != local.records:
        console.say(f"  {total:,} records read over all runs and workers of this replay")
    if local.parked:
        console.say(f"  {local.parked:,} records parked in the dead-letter queue (consumer dlq)")
    for shard, error in sorted(stopped_shards(outcome.state).items()):
        console.say(f"  shard {shard} stopped: {error}")
    failed = [worker.code for worker in workers if worker.failed]
    if failed:
        console.say(f"  {len(failed)} worker process(es) failed (exit codes {failed})")
    if request.source is Source.STREAM and not outcome.lease_table_deleted:
        console.say(f"  lease table {request.lease_table} kept")


def _exit_code(outcome: ReplayOutcome, workers: list[WorkerExit]) -> int:
    if stopped_shards(outcome.state) or any(worker.failed for worker in workers):
        return 1
    if outcome.interrupted:
        return 130
    return 0 if outcome.complete else 1


def _resume_command(request: ReplayRequest, options: ReplayOptions) -> str:
    parts = ["consumer", "replay", *window_args(request)]
    if options.config is not None:
        parts += ["--config", str(options.config)]
    if request.workers > 1:
        parts += ["--workers", str(request.workers)]
    return " ".join(parts)
