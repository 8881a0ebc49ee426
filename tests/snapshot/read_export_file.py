"""Reads one export data file with the backfill's ExportReader and reports memory (tests only):
`python -m tests.snapshot.read_export_file BUCKET KEY` with the CONSUMER_AWS__* environment.

Prints `items=N bad=B pages=P rss_before_kib=R hwm_kib=H`: VmRSS once the client is open and
VmHWM (the peak resident size) after the whole file is read, from /proc/self/status. Not
ru_maxrss: Linux carries the parent's high-water mark into it across exec.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from consumer.settings import load_settings
from consumer.snapshot.export_reader import ExportReader
from consumer.snapshot.segments import PartLease, PartState, SnapshotInfo, SnapshotLeases


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


async def read(bucket: str, key: str) -> str:
    endpoints = load_settings(None).aws.endpoints()
    snapshot = SnapshotInfo(
        "mem", "backfill", "t", "export", (), 1, parts=("file-0000",), version_us=1
    )
    part = PartState(
        "file-0000", "me", 1, 0, None, 0, 0, 0, None, finished=False, failed=None, detail=key
    )
    async with endpoints.aio_client("s3") as s3:
        await s3.head_bucket(Bucket=bucket)  # the client's own buffers, before the baseline
        leases = SnapshotLeases(None, "unused")
        reader = ExportReader(s3, bucket, snapshot, leases, "me", auto_commit=False)
        before = status_kib("VmRSS")
        items = bad = pages = 0
        failed = None
        async for page in reader._read_part(PartLease(part, "me", 1, 0)):
            items += len(page.items)
            bad += len(page.bad)
            pages += 1
            failed = page.failed
    hwm = status_kib("VmHWM")
    return (
        f"items={items} bad={bad} pages={pages} rss_before_kib={before} hwm_kib={hwm} "
        f"failed={failed}"
    )


if __name__ == "__main__":
    print(asyncio.run(read(sys.argv[1], sys.argv[2])), flush=True)
