"""The service process: a worker plus its health endpoint and metrics, with clear failures.

`serve` returns an exit code: 0 after a clean stop, 1 when the service could not run (the
reason is logged and printed as one line on stderr), 130 when a second signal cut the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

import structlog
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from checkpoints import LeaseTableMissing, LeaseTableUnavailable
from consumer.aws.errors import call_failed
from consumer.records.attribute import NATIVE_PYTHON_VIEW
from consumer.service.preflight import PreflightError
from consumer.service.worker import RoutesHook, Worker
from consumer.settings import Settings
from consumer.sources.model import ReaderError
from consumer.telemetry.health import HealthServer, Readiness
from consumer.telemetry.metrics import MetricsReporter

log = structlog.get_logger(__name__)


def readiness(worker: Worker) -> Readiness:
    state = worker.state
    coordinator = state.coordinator
    held = sorted(coordinator.held_shards()) if coordinator else []
    details: dict[str, object] = {"leases_held": len(held)}
    if state.stopping:
        return Readiness(False, "stopping", details)
    if coordinator is None or not state.ready:
        return Readiness(False, "starting", details)
    if not coordinator.is_valid():
        return Readiness(False, "lease table heartbeat lapsed", details)
    stopped = state.activity.stopped
    if stopped:
        shard, why = sorted(stopped.items())[0]
        details["stopped_shards"] = sorted(stopped)
        return Readiness(False, f"shard {shard} stopped: {why}", details)
    missing = state.missing_destinations()
    if missing:
        details["missing_destinations"] = missing
        sink, code = sorted(missing.items())[0]
        return Readiness(False, f"destination of {sink} missing ({code})", details)
    cooling = coordinator.taking_paused_s()
    if cooling > 0:
        return Readiness(
            False, f"gave up a lease for a missing destination; cooling down {cooling:.0f} s",
            details,
        )
    return Readiness(True, "ok", details)


def _startup_error(error: BaseException) -> str | None:
    """One line for the errors a user can fix (wrong stream, endpoint, credentials)."""
    if isinstance(error, PreflightError):
        return str(error)
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach an AWS endpoint: {error}"
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found (task role, environment or profile)"
    if isinstance(error, ClientError):
        return call_failed(error)
    if isinstance(error, LeaseTableMissing | LeaseTableUnavailable | ReaderError | ValueError):
        return str(error)
    return None


async def serve(
    settings: Settings,
    stop: asyncio.Event,
    until_idle_s: float | None = None,
    routes_hook: RoutesHook | None = None,
) -> int:
    worker = Worker(settings, until_idle_s, routes_hook)
    telemetry = settings.telemetry
    health = (
        HealthServer(telemetry.health_port, lambda: readiness(worker), telemetry.bind_address)
        if telemetry.health_port is not None
        else None
    )
    metrics = MetricsReporter(settings, worker.state.metrics)
    if not NATIVE_PYTHON_VIEW:
        # Works, but full decoding and the images' views are several times slower: say so once.
        log.warning(
            "decoder.pure_python",
            reason="consumer/records/_speedups.c was not compiled at install (no C compiler?)",
        )
    run = asyncio.create_task(worker.run(stop), name="worker")
    try:
        if health is not None:
            await health.start()
            log.info("health.listening", port=health.bound_port)
        await metrics.start()
        stop_wait = asyncio.create_task(stop.wait())
        await asyncio.wait({run, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if not run.done():
            # ECS sends SIGKILL stop_timeout_s after SIGTERM: the drain must fit in it.
            deadline = time.monotonic() + settings.stop_timeout_s
            try:
                await asyncio.wait_for(asyncio.shield(run), settings.stop_timeout_s)
            except TimeoutError:
                log.error(
                    "worker.stop_timeout",
                    stop_timeout_s=settings.stop_timeout_s,
                    overrun_s=round(time.monotonic() - deadline, 1),
                )
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run
                return 1
        run.result()
        return 0
    except Exception as error:  # classified for the user below; unknown ones re-raise
        message = _startup_error(error)
        if message is None:
            raise
        log.error("worker.failed", error=message)
        print(f"consumer: {message}", file=sys.stderr)
        return 1
    finally:
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run
        await metrics.aclose()
        if health is not None:
            await health.aclose()
