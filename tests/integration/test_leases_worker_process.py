"""Not a test module: the worker *process* the multi-process lease tests start and kill.

(It is named test_leases_* only because that is where lease test files live; it defines no
tests.) Run as a script, it runs one Coordinator against the local stack with a toy shard
processor that polls GetRecords from kinesis-mock, appends one JSON line per record to an
output file (O_APPEND: a line is never torn, even by kill -9) and checkpoints after each batch.
SIGTERM makes it stop gracefully (hand every lease off), like an ECS task being stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from contextlib import suppress
from typing import Any

import structlog

from checkpoints import (
    Checkpoint,
    Coordinator,
    LeaseHandle,
    LeaseSettings,
    LeaseTable,
    Position,
)
from consumer.aws.shards import KinesisShardLister
from consumer.local.stack import local_endpoints


def iterator_args(start: Checkpoint) -> dict[str, Any]:
    if start.position is Position.AFTER_SEQUENCE_NUMBER:
        return {
            "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
            "StartingSequenceNumber": start.sequence_number,
        }
    if start.position is Position.AT_TIMESTAMP:
        return {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": start.timestamp}
    if start.position is Position.LATEST:
        return {"ShardIteratorType": "LATEST"}
    return {"ShardIteratorType": "TRIM_HORIZON"}


class RecordingProcessor:
    """Reads a shard with GetRecords, records every record, checkpoints after each batch."""

    def __init__(self, kinesis: Any, stream: str, out_fd: int, worker: str, poll_s: float) -> None:
        self._kinesis = kinesis
        self._stream = stream
        self._out_fd = out_fd
        self._worker = worker
        self._poll_s = poll_s

    async def __call__(self, handle: LeaseHandle) -> None:
        response = await self._kinesis.get_shard_iterator(
            StreamName=self._stream, ShardId=handle.shard_id, **iterator_args(handle.start_position)
        )
        iterator = response["ShardIterator"]
        # Stop only between batches: a batch read is always recorded and checkpointed.
        while not handle.stop_requested.is_set():
            page = await self._kinesis.get_records(ShardIterator=iterator, Limit=200)
            records = page.get("Records", [])
            if records:
                now = time.time_ns()
                lines = [
                    json.dumps(
                        {
                            "w": self._worker,
                            "shard": handle.shard_id,
                            "seq": record["SequenceNumber"],
                            "key": record["PartitionKey"],
                            "data": record["Data"].decode(),
                            "t": now,
                        }
                    ).encode()
                    + b"\n"
                    for record in records
                ]
                os.write(self._out_fd, b"".join(lines))
                await handle.checkpoint(records[-1]["SequenceNumber"])
            iterator = page.get("NextShardIterator")
            if iterator is None:
                children = [child["ShardId"] for child in page.get("ChildShards", [])]
                await handle.checkpoint_shard_end(children)
                return
            if not records:
                with suppress(TimeoutError):
                    await asyncio.wait_for(handle.stop_requested.wait(), self._poll_s)


async def run(args: argparse.Namespace) -> None:
    endpoints = local_endpoints(args.moto_url, args.kinesis_url)
    settings = LeaseSettings(
        application_name=args.app,
        stream_name=args.stream,
        heartbeat_interval_s=args.heartbeat,
        failover_s=args.failover,
        take_interval_s=args.take,
        handoff_timeout_s=args.handoff_timeout,
        shutdown_timeout_s=5.0,
        shard_sync_interval_s=args.shard_sync,
        max_steals_per_interval=2,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if args.start_on_sigusr1:
        # Pre-spawned by a test: imports are done, the coordinator starts on its signal.
        go = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, go.set)
        print("waiting for SIGUSR1", flush=True)
        await go.wait()
    out_fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        async with endpoints.aio_client("kinesis") as kinesis:
            processor = RecordingProcessor(kinesis, args.stream, out_fd, args.worker_id, 0.25)
            lister = KinesisShardLister(kinesis, args.stream)
            async with (
                LeaseTable.open(endpoints, settings.lease_table, settings.retry) as table,
                Coordinator(
                    settings, table, lister, processor, worker_id=args.worker_id
                ) as coordinator,
            ):
                print(f"ready {coordinator.worker_id}", flush=True)
                await stop.wait()
            print(f"stopped {dict(coordinator.counters)}", flush=True)
    finally:
        os.close(out_fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--moto-url", required=True)
    parser.add_argument("--kinesis-url", required=True)
    parser.add_argument("--app", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--heartbeat", type=float, default=0.5)
    parser.add_argument("--failover", type=float, default=3.0)
    parser.add_argument("--take", type=float, default=0.5)
    parser.add_argument("--handoff-timeout", type=float, default=10.0)
    parser.add_argument("--shard-sync", type=float, default=1.0)
    parser.add_argument("--start-on-sigusr1", action="store_true")
    args = parser.parse_args(argv)
    level = logging.DEBUG if os.environ.get("LEASES_WORKER_DEBUG") else logging.INFO
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
