"""HTTP health endpoints for ECS and load balancers: /healthz (alive) and /readyz (ready).

Ready means: the worker registered with the lease table, its heartbeat is current (it is not
fenced), and it is not stopping. /readyz answers 503 otherwise, with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import orjson
from aiohttp import web


class PortUnavailable(ValueError):
    """A listening port that cannot be bound (in use, or not allowed); one line naming the
    setting. A ValueError, so `consumer run` reports it as a start-up error, not a traceback."""


Route = Callable[[web.Request], Awaitable[web.Response]]


class HttpServer:
    """Serves GET `routes` on `host`:`port` (port 0 picks a free one). No I/O until `start`;
    a port that cannot be bound raises PortUnavailable naming `setting`."""

    def __init__(self, routes: Mapping[str, Route], host: str, port: int, setting: str) -> None:
        self._routes = routes
        self._host = host
        self._port = port
        self._setting = setting
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        app = web.Application()
        for path, route in self._routes.items():
            app.router.add_get(path, route)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self._host, self._port).start()
        except OSError as error:
            raise PortUnavailable(
                f"{self._setting} {self._port} cannot be bound on {self._host}: "
                f"{error.strerror or error} "
                "(another process, or another of this service's ports, is using it)"
            ) from None
        addresses = self._runner.addresses
        self.bound_port = int(addresses[0][1]) if addresses else self._port

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    details: dict[str, object]


class HealthServer(HttpServer):
    """/healthz and /readyz on `host`:`port`."""

    def __init__(
        self, port: int, readiness: Callable[[], Readiness], host: str = "0.0.0.0"
    ) -> None:
        routes = {"/healthz": self._healthz, "/readyz": self._readyz}
        super().__init__(routes, host, port, "telemetry.health_port")
        self._readiness = readiness

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"status": "alive"}), content_type="application/json")

    async def _readyz(self, request: web.Request) -> web.Response:
        state = self._readiness()
        body = orjson.dumps({"ready": state.ready, "reason": state.reason, **state.details})
        return web.Response(
            body=body, status=200 if state.ready else 503, content_type="application/json"
        )
