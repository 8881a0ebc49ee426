"""A stateful SubscribeToShard server in front of kinesis-mock (see server.py), run on its own
thread and event loop so that in-process workers (`asyncio.run`) and `consumer run` processes
can both use it as their Kinesis endpoint."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from tests.efo_server.server import EfoRules, EfoServer

__all__ = ["EfoRules", "EfoServer", "running_efo_server"]


@contextmanager
def running_efo_server(upstream: str, rules: EfoRules | None = None) -> Iterator[EfoServer]:
    """Serves on a free loopback port until the block ends; `server.url` is the endpoint."""
    server = EfoServer(upstream, rules or EfoRules())
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner_box: list[web.AppRunner] = []

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/", server.handle)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        runner_box.append(runner)
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="efo-server", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the EFO test server did not start")
    try:
        yield server
    finally:

        async def stop() -> None:
            # End the streaming handlers first: they would otherwise outlive the loop.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            await runner_box[0].cleanup()
            if server._session is not None:
                await server._session.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
