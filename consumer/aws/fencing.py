"""The lease check right before each request a sink sends (issue 15.3, invariant 3; README,
Reliability). The pipeline lends the check to the write (`fenced`); sinks call `check_fence()`
before each request, botocore before each send and retry (`fence_requests`), and the socket in
`send` (`fenced_socket`), after the last await. Past the local expiry the check raises;
outside a fenced write it does nothing.
"""

from __future__ import annotations

import socket
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


def fence_requests(client: Any) -> None:
    """Checks the fence in `before-send` of each request of `client` and before botocore
    retries one (a refused send is a connection error to it: not retried, nor slept on).
    Once per client; clients without botocore events (test fakes) are left alone."""
    meta = getattr(client, "meta", None)
    if meta is None or not hasattr(meta, "events"):
        return
    meta.events.register("before-send", _check_fence_event, unique_id="fence:before-send")
    # First at the retry handler's own node: on a shorter name it would run after its sleep.
    service = meta.service_model.service_id.hyphenize()
    meta.events.register_first(
        f"needs-retry.{service}", _check_fence_event, unique_id="fence:needs-retry"
    )


def _check_fence_event(**_: Any) -> None:
    check_fence()  # returns None: botocore goes on (sends the request, or decides on a retry)


class FenceRefusedSend(ConnectionAbortedError):
    """Not sent: the lease is gone. An OSError: asyncio closes the connection quietly."""


class FencedSocket(socket.socket):
    """Checks the fence of the sending context before each send (asyncio's transports)."""

    def send(self, data: Any, flags: int = 0) -> int:
        _refuse_unless_owned()
        return super().send(data, flags)

    def sendmsg(self, *args: Any) -> int:  # the transport's writelines from Python 3.12
        _refuse_unless_owned()
        return super().sendmsg(*args)


def _refuse_unless_owned() -> None:
    try:
        check_fence()
    except Exception as error:  # the lease's own error, kept as the cause
        raise FenceRefusedSend(f"not sent: {error}") from error


def fenced_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """An aiohttp `socket_factory` (aiobotocore's `connector_args`)."""
    return FencedSocket(*addr_info[:3])
