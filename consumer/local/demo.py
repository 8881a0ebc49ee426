"""`consumer demo`: the service end to end on the embedded local stack.

Brings the stack up, creates the source table (with its stream) and the Kinesis stream,
writes sample order changes, bridges them into Kinesis in the destination's format (with
duplicates and reorderings injected, as AWS may), reads them back through the consumer's
enhanced fan-out reader, decodes them, prints a summary and shuts the stack down.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from consumer.aws import AwsEndpoints
from consumer.local.bridge import BridgeOptions, DestinationBridge
from consumer.local.sample_orders import (
    TTL_ATTRIBUTE,
    create_kinesis_stream,
    create_source_table,
    write_order_changes,
)
from consumer.local.stack import running_local_stack
from consumer.records import DecodeError, decode_kinesis_record
from consumer.sources.initial_response import install_subscription_stream
from consumer.sources.lean import install_lean_get_records
from consumer.sources.model import ReadBatch, StartPosition
from consumer.sources.registration import ensure_stream_consumer
from consumer.sources.efo import EfoReader


@dataclass(frozen=True)
class DemoOptions:
    changes: int = 400
    shards: int = 2
    duplicate_rate: float = 0.05
    reorder_rate: float = 0.1
    seed: int = 7
    read_timeout_s: float = 120.0


def _say(message: str) -> None:
    print(f"demo: {message}", flush=True)


async def _read_back(
    endpoints: AwsEndpoints, stream_arn: str, expected: int, timeout_s: float
) -> list[ReadBatch]:
    """Reads every shard through EFO until `expected` records arrived."""
    batches: list[ReadBatch] = []
    received = 0
    done = asyncio.Event()
    async with endpoints.aio_client("kinesis") as client:
        install_lean_get_records(client)
        install_subscription_stream(client)
        consumer_arn = await ensure_stream_consumer(client, stream_arn, "consumer-demo")
        shards = (await client.list_shards(StreamARN=stream_arn))["Shards"]
        reader = EfoReader(client, consumer_arn)

        async def read_shard(shard_id: str) -> None:
            nonlocal received
            async for batch in reader.read(shard_id, StartPosition.trim_horizon()):
                batches.append(batch)
                received += len(batch.records)
                if received >= expected:
                    done.set()

        tasks = [asyncio.create_task(read_shard(shard["ShardId"])) for shard in shards]
        try:
            await asyncio.wait_for(done.wait(), timeout_s)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return batches


def run_demo(options: DemoOptions) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="consumer-demo-") as work_dir:
        _say("starting the local stack (moto server + kinesis-mock)")
        with running_local_stack(Path(work_dir)) as stack:
            endpoints = stack.endpoints()
            dynamodb = endpoints.client("dynamodb")
            kinesis = endpoints.client("kinesis")
            streams = endpoints.client("dynamodbstreams")
            create_source_table(dynamodb, "orders")
            stream_arn = create_kinesis_stream(kinesis, "orders-cdc", options.shards)
            _say(f"created table orders and stream orders-cdc ({options.shards} shards)")

            counts = write_order_changes(dynamodb, "orders", options.changes, seed=options.seed)
            _say(
                f"wrote {counts.total} changes: {counts.inserts} inserts, {counts.modifies} "
                f"modifies, {counts.removes} deletes, {counts.ttl_deletes} TTL-style deletes"
            )
            bridge = DestinationBridge(
                streams,
                kinesis,
                "orders",
                "orders-cdc",
                endpoints.region,
                BridgeOptions(
                    duplicate_rate=options.duplicate_rate,
                    reorder_rate=options.reorder_rate,
                    seed=options.seed,
                    ttl_attribute=TTL_ATTRIBUTE,
                ),
            )
            while bridge.pump():
                pass
            stats = bridge.stats
            _say(
                f"bridged {stats.changes} changes into Kinesis as {stats.written} records "
                f"({stats.duplicates} duplicates and {stats.reorderings} reorderings injected)"
            )

            batches = asyncio.run(
                _read_back(endpoints, stream_arn, stats.written, options.read_timeout_s)
            )
            names: Counter[str] = Counter()
            ttl_deletes = 0
            failures = 0
            records = 0
            for batch in batches:
                for record in batch.records:
                    records += 1
                    try:
                        event = decode_kinesis_record(
                            record.data,
                            stream="orders-cdc",
                            shard_id=batch.shard_id,
                            sequence_number=record.sequence_number,
                            arrival_ms=record.arrival_ms,
                        )
                    except DecodeError as error:
                        failures += 1
                        print(f"demo: decode error: {error}", file=sys.stderr)
                        continue
                    names[event.event_name.value] += 1
                    ttl_deletes += event.ttl_delete
    elapsed = time.monotonic() - started
    ok = records == stats.written and failures == 0 and ttl_deletes == stats.ttl_deletes
    print(
        f"demo: {'OK' if ok else 'FAILED'} changes={counts.total} records={records} "
        f"inserts={names['INSERT']} modifies={names['MODIFY']} removes={names['REMOVE']} "
        f"ttl_deletes={ttl_deletes} duplicates={stats.duplicates} "
        f"reorderings={stats.reorderings} decode_errors={failures} seconds={elapsed:.1f}"
    )
    return 0 if ok else 1
