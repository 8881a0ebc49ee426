"""The lease check right before each request a sink sends (issue 15.3, invariant 3).

The pipeline checks the lease's local validity before each sink write; but one write can take
long between that check and its requests (a replication transform hook runs one call at a time
in a thread; an event-loop stall), and a request sent after the local expiry may land after
another worker took the shard. So the pipeline also lends the check to the write (`fenced`),
and a sink calls `check_fence()` just before each request: past the expiry it raises
LeaseLost instead of writing. Outside a fenced write (tools, tests) it does nothing.

The last check is the socket's (`fenced_socket`, every aiobotocore client's socket factory):
between botocore's `before-send` and the write there are still awaits (the connection pool, a
new connection: moto answers `Connection: close`), and a stall there let a checked request
leave seconds after the expiry (chaos, EFO, seed 251190). `send` checks synchronously, with no
await between the check and the bytes going to the kernel.
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
    """Also checks the fence in botocore's `before-send` event of every request of `client`
    (after the client's own awaits: credentials, signing) and before botocore retries a
    request (a refused send is a connection error to botocore: never retried, never slept on,
    once the lease is gone). Registered once per client; clients without botocore events
    (test fakes) are left alone.
    """
    meta = getattr(client, "meta", None)
    if meta is None or not hasattr(meta, "events"):
        return
    meta.events.register("before-send", _check_fence_event, unique_id="fence:before-send")
    # First at the retry handler's own node ("needs-retry.<service>"): a handler on a shorter
    # name would run after it, that is after its backoff sleep.
    service = meta.service_model.service_id.hyphenize()
    meta.events.register_first(
        f"needs-retry.{service}", _check_fence_event, unique_id="fence:needs-retry"
    )


def _check_fence_event(**_: Any) -> None:
    check_fence()  # returns None: botocore goes on (sends the request, or decides on a retry)


class FenceRefusedSend(ConnectionAbortedError):
    """The socket refused to send: the fenced write's lease is no longer locally valid. An
    OSError, so asyncio's transport reports it as a lost connection, quietly."""


class FencedSocket(socket.socket):
    """A TCP socket that checks the fence of the write it sends for (the caller's context)
    right before each send. asyncio's selector transport sends through `send`."""

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
    """An aiohttp `socket_factory` (aiobotocore's `connector_args`): sockets that check the
    fence on every send."""
    family, kind, proto = addr_info[0], addr_info[1], addr_info[2]
    return FencedSocket(family, kind, proto)
