"""The verify scans, on the shared table reader: the source table (purpose "verify") and the
replica, for its extras (purpose "verify-extras"), leased so several processes share a table.

A running scan is joined while a worker holds one of its segments (or it has just started);
one whose workers are all gone, or that is finished, is ended and a new one begun: verify keeps
its findings in memory, so a crashed run's committed segments can only be read again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from consumer.snapshot.segments import SnapshotInfo, SnapshotLeases
from consumer.snapshot.table_reader import begin_scan_snapshot
from consumer.verify.model import VerifyError

SOURCE_PURPOSE = "verify"
EXTRAS_PURPOSE = "verify-extras"


async def open_scan(
    leases: SnapshotLeases,
    *,
    purpose: str,
    table: str,
    segments: int,
    pipelines: tuple[str, ...],
    now_us: int,
) -> SnapshotInfo:
    running = await leases.current(purpose, table)
    if running is not None:
        parts = await leases.parts(running.snapshot_id)
        now_ms = leases.now_ms()
        unfinished = not parts or not all(part.finished for part in parts)
        held = any(
            part.owner is not None and part.expires_at_ms > now_ms
            for part in parts
            if not part.finished
        )
        young = now_us - running.created_us < leases.lease_ms * 1000
        if unfinished and (held or young):
            if running.pipelines != pipelines:
                raise VerifyError(
                    f"verify {running.snapshot_id} of {table} is running with --pipelines "
                    f"{','.join(running.pipelines)}: join it with those, or wait for it"
                )
            return running
        await leases.end(running)
    stamp = datetime.fromtimestamp(now_us / 1_000_000, UTC).strftime("%Y%m%dT%H%M%SZ")
    return await begin_scan_snapshot(
        leases,
        snapshot_id=f"{purpose}-{table}-{stamp}-{uuid.uuid4().hex[:6]}",
        purpose=purpose,
        table=table,
        segments=segments,
        pipelines=pipelines,
        now_us=now_us,
    )


async def close_scan(leases: SnapshotLeases, info: SnapshotInfo) -> None:
    """Ends the scan once every segment is finished (whichever worker gets here first)."""
    parts = await leases.parts(info.snapshot_id)
    if parts and all(part.finished for part in parts):
        await leases.end(info)
