"""Reader CPU cost per record: polling and enhanced fan-out against kinesis-mock.

Run by `make bench`. Prints one line per result: `name value unit`.
CPU is this process's CPU time (user + system) while reading, divided by the records read;
kinesis-mock runs in another process, so its work is not counted. For scale, the same run
also reads through botocore's normal parsing path (`client.get_records` without the lean hook).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consumer.aws import AwsEndpoints
from consumer.local.sample_orders import create_kinesis_stream
from consumer.local.stack import LocalStack
from consumer.sources.efo import EfoReader
from consumer.sources.initial_response import install_subscription_stream
from consumer.sources.lean import install_lean_get_records
from consumer.sources.model import StartPosition
from consumer.sources.polling import PollingOptions, PollingReader
from consumer.sources.registration import ensure_stream_consumer

RECORDS = int(os.environ.get("BENCH_READER_RECORDS", "3000"))
PAYLOAD = b'{"eventName":"MODIFY","dynamodb":{"Keys":{"pk":{"S":"x"}}}}' + b" " * 1600


def cpu() -> float:
    return time.process_time()


async def read_count(reader: Any, shard_id: str, want: int) -> float:
    """CPU seconds spent reading `want` records."""
    got = 0
    started = cpu()
    stream = reader.read(shard_id, StartPosition.trim_horizon())
    async for batch in stream:
        got += len(batch.records)
        if got >= want:
            break
    await stream.aclose()
    return cpu() - started


async def bare_botocore(client: Any, arn: str, shard_id: str, want: int) -> float:
    """The naive loop: botocore-parsed GetRecords, no lean hook."""
    started = cpu()
    iterator = (
        await client.get_shard_iterator(
            StreamARN=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )
    )["ShardIterator"]
    got = 0
    while got < want:
        response = await client.get_records(ShardIterator=iterator, Limit=10_000)
        got += len(response["Records"])
        iterator = response["NextShardIterator"]
    return cpu() - started


async def run(endpoints: AwsEndpoints, arn: str, shard_id: str) -> dict[str, float]:
    results: dict[str, float] = {}
    async with endpoints.aio_client("kinesis") as plain:
        results["reader_cpu_us_per_record_botocore"] = (
            await bare_botocore(plain, arn, shard_id, RECORDS) / RECORDS * 1e6
        )
    async with endpoints.aio_client("kinesis") as client:
        install_lean_get_records(client)
        install_subscription_stream(client)
        polling = PollingReader(client, arn, PollingOptions(interval_s=0.2))
        results["reader_cpu_us_per_record_polling"] = (
            await read_count(polling, shard_id, RECORDS) / RECORDS * 1e6
        )
        consumer_arn = await ensure_stream_consumer(client, arn, "bench")
        efo = EfoReader(client, consumer_arn)
        results["reader_cpu_us_per_record_efo"] = (
            await read_count(efo, shard_id, RECORDS) / RECORDS * 1e6
        )
    return results


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        stack = LocalStack(Path(work))
        state = stack.start()
        try:
            endpoints = state.endpoints()
            kinesis = endpoints.client("kinesis")
            arn = create_kinesis_stream(kinesis, "bench-readers", 1)
            for start in range(0, RECORDS, 500):
                kinesis.put_records(
                    StreamName="bench-readers",
                    Records=[
                        {"Data": PAYLOAD, "PartitionKey": str(n)}
                        for n in range(start, min(start + 500, RECORDS))
                    ],
                )
            shard_id = kinesis.list_shards(StreamName="bench-readers")["Shards"][0]["ShardId"]
            time.sleep(0.5)
            results = asyncio.run(run(endpoints, arn, shard_id))
        finally:
            stack.stop()
    for name, value in results.items():
        print(f"{name} {value:.1f} us/record")
    ratio = (
        results["reader_cpu_us_per_record_polling"] / results["reader_cpu_us_per_record_botocore"]
    )
    print(f"reader_polling_vs_botocore {ratio:.2f} ratio")


if __name__ == "__main__":
    main()
