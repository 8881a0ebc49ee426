"""The lease check right before each request a sink sends (issue 15.3, invariant 3).

The pipeline checks the lease's local validity before each sink write; but one write can take
long between that check and its requests (a replication transform hook runs one call at a time
in a thread; an event-loop stall), and a request sent after the local expiry may land after
another worker took the shard. So the pipeline also lends the check to the write (`fenced`),
and a sink calls `check_fence()` just before each request: past the expiry it raises
LeaseLost instead of writing. Outside a fenced write (tools, tests) it does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# A context variable: tasks a sink starts for its requests (asyncio.gather) inherit it.
_FENCE: ContextVar[Callable[[], None] | None] = ContextVar("sink_write_fence", default=None)


@contextmanager
def fenced(check: Callable[[], None]) -> Iterator[None]:
    """Within this block, `check_fence()` calls `check` (which raises if the lease is gone)."""
    token = _FENCE.set(check)
    try:
        yield
    finally:
        _FENCE.reset(token)


def check_fence() -> None:
    check = _FENCE.get()
    if check is not None:
        check()


def fence_requests(client: Any, event_name: str) -> None:
    """Also checks the fence in botocore's `before-send` event of `event_name` (for example
    "before-send.dynamodb.PutItem"): after the client's own awaits (credentials, signing),
    right before the request goes on the wire. A pause between the sink's check and the send
    (an event-loop stall, SIGSTOP) otherwise lets a checked request leave after the expiry.
    Registered once per client; clients without botocore events (test fakes) are left alone.
    """
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is not None:
        events.register(event_name, _check_before_send, unique_id=f"fence:{event_name}")


def _check_before_send(**_: Any) -> None:
    check_fence()  # returns None: botocore sends the request
