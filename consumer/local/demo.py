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
from consumer.records import DecodeError, RecordPosition, decode_kinesis_data
from consumer.sources.efo import EfoReader
from consumer.sources.initial_response import install_subscription_stream
from consumer.sources.lean import install_lean_get_records
from consumer.sources.model import ReadBatch, StartPosition
from consumer.sources.registration import ensure_stream_consumer


@dataclass(frozen=True)
class DemoOptions:
    changes: int = 400
    shards: int = 2
    duplicate_rate: float = 0.05
    reorder_rate: float = 0.1
    seed: int = 7
    read_timeout_s: float = 120.0


_STARTED = time.monotonic()


def _say(message: str) -> None:
    print(f"demo: [{time.monotonic() - _STARTED:5.1f}s] {message}", flush=True)


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
        _say("registered the enhanced fan-out consumer; subscribing to every shard")
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
            _say(f"read {sum(len(b.records) for b in batches)} records back; decoding")
            names: Counter[str] = Counter()
            ttl_events: set[str] = set()
            event_ids: set[str] = set()
            failures = 0
            records = 0
            for batch in batches:
                for record in batch.records:
                    records += 1
                    position = RecordPosition(
                        "orders-cdc",
                        batch.shard_id,
                        record.sequence_number,
                        0,
                        record.arrival_ms,
                    )
                    for result in decode_kinesis_data(record.data, position, strict=True):
                        if isinstance(result, DecodeError):
                            failures += 1
                            print(f"demo: decode error: {result}", file=sys.stderr)
                            continue
                        if result.event_id in event_ids:
                            continue  # an injected duplicate
                        event_ids.add(result.event_id)
                        names[result.event_name.value] += 1
                        if result.ttl_delete:
                            ttl_events.add(result.event_id)
    elapsed = time.monotonic() - started
    ttl_deletes = len(ttl_events)
    ok = (
        records == stats.written
        and len(event_ids) == counts.total
        and failures == 0
        and ttl_deletes == counts.ttl_deletes
    )
    print(
        f"demo: {'OK' if ok else 'FAILED'} changes={counts.total} records={records} "
        f"distinct={len(event_ids)} "
        f"inserts={names['INSERT']} modifies={names['MODIFY']} removes={names['REMOVE']} "
        f"ttl_deletes={ttl_deletes} duplicates={stats.duplicates} "
        f"reorderings={stats.reorderings} decode_errors={failures} seconds={elapsed:.1f}"
    )
    return 0 if ok else 1
