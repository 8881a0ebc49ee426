"""Who this worker is: the ECS task ARN when running on ECS, else host and pid.

The id must be unique among live workers (two live processes with one id would both believe
they own the same leases). A task ARN is unique per ECS task; host:pid is unique per machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import urllib.request
from collections.abc import Callable, Mapping

ECS_METADATA_ENV = "ECS_CONTAINER_METADATA_URI_V4"

# Fetches a URL and returns its body; injectable for tests.
HttpGet = Callable[[str, float], bytes]


def _http_get(url: str, timeout_s: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        body: bytes = response.read()
        return body


def host_pid_id(hostname: str | None = None, pid: int | None = None) -> str:
    return f"{hostname or socket.gethostname()}:{pid if pid is not None else os.getpid()}"


def worker_id_from_environment(
    environ: Mapping[str, str] | None = None,
    http_get: HttpGet = _http_get,
    timeout_s: float = 2.0,
) -> str:
    """ECS task metadata v4 (`GET {ECS_CONTAINER_METADATA_URI_V4}/task` -> `TaskARN`) when
    the variable is set and answers; otherwise host:pid. Never raises."""
    env = os.environ if environ is None else environ
    uri = env.get(ECS_METADATA_ENV)
    if uri:
        try:
            task = json.loads(http_get(f"{uri.rstrip('/')}/task", timeout_s))
            arn = task.get("TaskARN") if isinstance(task, dict) else None
            if isinstance(arn, str) and arn:
                return arn
        except (OSError, ValueError):
            pass  # metadata endpoint unreachable or odd: host:pid is still unique
    return host_pid_id()


async def resolve_worker_id(environ: Mapping[str, str] | None = None) -> str:
    """`worker_id_from_environment` off the event loop (it may do one HTTP GET)."""
    return await asyncio.to_thread(worker_id_from_environment, environ)
