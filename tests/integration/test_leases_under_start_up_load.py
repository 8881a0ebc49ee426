"""A starting worker keeps the leases it takes: no start-up work blocks its event loop while it
holds them (issue 15, EFO chaos seed 251190: a worker started 7 s before a kill lost its own
leases twice in its first ten seconds, "heartbeat not confirmed within the local expiry").

Measured with a stall sampler under two busy-loop processes on a 2-core machine: the freeze of
the start-up heap (one full garbage collection of ~200,000 objects, consumer/service/
startup_heap.py) blocked the loop for 1.57 s right after the first lease was taken, and the
worker dropped both its leases 1.6 s after acquiring them (the local expiry here is 2 s). The
test stands that collection in with a blocking sleep longer than the local expiry, so it does
not depend on the machine's load.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from consumer.local.stack import LocalStackState
from consumer.service import startup_heap
from consumer.service.worker import Worker
from tests.service_harness import Deployment

pytestmark = pytest.mark.integration


async def _hold_leases(worker: Worker, shards: int, hold_s: float) -> dict[str, int]:
    """Runs `worker` until it holds `shards` leases, keeps it running `hold_s` more, stops it;
    returns its coordinator's counters."""
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    try:
        deadline = time.monotonic() + 60
        while True:
            coordinator = worker.state.coordinator
            if coordinator is not None and len(coordinator.held_shards()) == shards:
                break
            assert not run.done(), run.exception()
            assert time.monotonic() < deadline, "the worker never held every lease"
            await asyncio.sleep(0.05)
        await asyncio.sleep(hold_s)
        return dict(coordinator.counters)
    finally:
        stop.set()
        await asyncio.wait_for(run, 60)


def test_blocking_start_up_work_is_done_before_the_first_lease_is_taken(
    local_stack: LocalStackState, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = Deployment(local_stack, unique_name, shards=2)
    app.create()
    settings = app.settings()
    expiry_s = settings.leases.local_expiry_s
    collection_s = expiry_s + 0.5
    collections: list[float] = []

    def slow_full_collection() -> int:
        collections.append(time.monotonic())
        time.sleep(collection_s)  # blocks the loop, as the real collection does under load
        return 0

    monkeypatch.setattr(startup_heap, "_frozen", False)
    monkeypatch.setattr(
        startup_heap, "gc", SimpleNamespace(collect=slow_full_collection, freeze=lambda: None)
    )

    counters = asyncio.run(_hold_leases(Worker(settings), 2, collection_s + expiry_s))

    assert len(collections) == 1  # the freeze ran, once
    assert counters.get("local_expiries", 0) == 0
    assert counters.get("fenced_by_others", 0) == 0
