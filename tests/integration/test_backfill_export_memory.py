"""An export data file is streamed, not read whole: reading a big one keeps memory bounded.

DynamoDB export data files are gzip, one item per line, and AWS does not bound their size
(output format: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html);
a table of a few hundred GB gives files of hundreds of MB after decompression. The reader must
hold one page of lines at a time, whatever the file's size.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

from consumer.local.stack import LocalStackState
from tests.service_harness import Deployment
from tests.snapshot.world import ROOT

ITEMS = 120_000
MIB = 1024


def _data_file(items: int) -> bytes:
    """About 1 KB per line of typed DynamoDB JSON, as an export writes it."""
    padding = "x" * 950
    text = b"".join(
        b'{"Item":{"pk":{"S":"order#%08d"},"n":{"N":"%d"},"padding":{"S":"%s"}}}\n'
        % (index, index, padding.encode())
        for index in range(items)
    )
    return gzip.compress(text, compresslevel=1)


def test_a_big_export_data_file_is_read_in_bounded_memory(
    local_stack: LocalStackState, unique_name: str
) -> None:
    deployment = Deployment(local_stack, unique_name, shards=1)
    s3 = deployment.endpoints.client("s3")
    bucket = f"{unique_name}-exports"
    s3.create_bucket(Bucket=bucket)
    key = "exp/AWSDynamoDB/01700000000000-abcdefgh/data/big.json.gz"
    body = _data_file(ITEMS)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    answer = subprocess.run(
        [sys.executable, "-m", "tests.snapshot.read_export_file", bucket, key],
        env={**os.environ, **deployment.environment()},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stderr[-2000:]
    figures = dict(part.split("=", 1) for part in answer.stdout.split())
    assert figures["items"] == str(ITEMS) and figures["bad"] == "0"
    assert figures["failed"] == "None"
    assert int(figures["pages"]) == ITEMS // 1000  # 1,000 lines a page, the last one "last"
    growth_mib = (int(figures["hwm_kib"]) - int(figures["rss_before_kib"])) / MIB
    # The file is ~120 MB of text: read whole it took about twice that (text and lines).
    # Streamed, the peak is a page of lines and its items, a few MB, plus allocator slack.
    print(f"backfill_export_read_peak_growth_mib={growth_mib:.1f}")
    assert growth_mib < 48, f"peak grew {growth_mib:.0f} MiB while reading ({figures})"
