"""A Kinesis stand-in for memory benchmarks: shards with a deep, synthetic backlog.

kinesis-mock slows as a shard fills and cannot hold 100 shards x 20,000 records here, so the
backlog benchmark reads from this server instead. It speaks the Kinesis JSON protocol
(`X-Amz-Target: Kinesis_20131202.<Operation>`) for the calls a polling worker makes:
DescribeStreamSummary, ListShards, GetShardIterator and GetRecords. Every shard holds
`records_per_shard` destination records made by `make_record(n)`; GetRecords honours `Limit`
and AWS's 10 MiB response cap, and reports MillisBehindLatest > 0 until a shard is read to its
end. Benchmark tooling only: no resharding, no EFO, no error injection.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

MAX_RESPONSE_BYTES = 10 * 1024 * 1024  # GetRecords returns at most 10 MiB per call
ARRIVAL_S = 1_700_000_000.0


@dataclass
class Backlog:
    stream: str
    shards: int
    records_per_shard: int
    make_record: Callable[[int], bytes]
    # With a rate, records arrive over time (that many per second per shard from the first read),
    # as on a live stream; without, all are there from the start (a backlog).
    rate_per_shard: float | None = None
    served: int = 0
    started_at: float = 0.0
    _encoded: dict[int, str] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:aws:kinesis:us-east-1:000000000000:stream/{self.stream}"

    def shard_id(self, index: int) -> str:
        return f"shardId-{index:012d}"

    def data(self, n: int) -> str:
        # Without a rate (a backlog of millions), records repeat with a period of 1,000: only
        # their size and shape matter there, and encoding 2 million would dominate the run.
        # A live stream's records are all distinct (consumers count distinct eventIDs).
        key = n if self.rate_per_shard is not None else n % 1000
        if key not in self._encoded:
            self._encoded[key] = base64.b64encode(self.make_record(key)).decode()
        return self._encoded[key]

    def available(self) -> int:
        if self.rate_per_shard is None:
            return self.records_per_shard
        if not self.started_at:  # the live stream starts with the first read
            self.started_at = time.monotonic()
        arrived = int((time.monotonic() - self.started_at) * self.rate_per_shard)
        return min(self.records_per_shard, arrived)

    def get_records(self, shard: int, position: int, limit: int) -> dict[str, object]:
        records: list[str] = []
        size = 0
        available = self.available()
        end = min(available, position + limit)
        while position < end:
            data = self.data(shard * self.records_per_shard + position)
            if records and size + len(data) > MAX_RESPONSE_BYTES:
                break
            sequence = f"{(shard + 1) * 10**20 + position:056d}"
            records.append(
                f'{{"SequenceNumber":"{sequence}","ApproximateArrivalTimestamp":{ARRIVAL_S},'
                f'"Data":"{data}","PartitionKey":"p{position}"}}'
            )
            size += len(data)
            position += 1
        self.served += len(records)
        behind = 1000 if position < available else 0
        return {
            "_records": records,
            "NextShardIterator": f"{shard}:{position}",
            "MillisBehindLatest": behind,
        }


def application(backlog: Backlog) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        operation = request.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        body = await request.json(loads=json.loads) if request.can_read_body else {}
        if operation == "DescribeStreamSummary":
            return reply({"StreamDescriptionSummary": summary(backlog)})
        if operation == "ListShards":
            return reply({"Shards": [shard(backlog, n) for n in range(backlog.shards)]})
        if operation == "GetShardIterator":
            index = int(body["ShardId"].rsplit("-", 1)[-1])
            position = 0
            if body.get("ShardIteratorType") == "AFTER_SEQUENCE_NUMBER":
                position = int(body["StartingSequenceNumber"]) % 10**20 + 1
            return reply({"ShardIterator": f"{index}:{position}"})
        if operation == "GetRecords":
            index, position = (int(part) for part in body["ShardIterator"].split(":"))
            result = backlog.get_records(index, position, int(body.get("Limit", 10_000)))
            records = result.pop("_records")
            assert isinstance(records, list)
            text = json.dumps(result)[:-1] + ',"Records":[' + ",".join(records) + "]}"
            return web.Response(body=text.encode(), content_type="application/x-amz-json-1.1")
        return reply({"__type": "UnknownOperationException", "message": operation}, status=400)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/", handle)
    return app


def reply(payload: dict[str, object], status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(payload).encode(), status=status, content_type="application/x-amz-json-1.1"
    )


def summary(backlog: Backlog) -> dict[str, object]:
    return {
        "StreamName": backlog.stream,
        "StreamARN": backlog.arn,
        "StreamStatus": "ACTIVE",
        "StreamModeDetails": {"StreamMode": "PROVISIONED"},
        "RetentionPeriodHours": 24,
        "StreamCreationTimestamp": ARRIVAL_S,
        "EnhancedMonitoring": [],
        "OpenShardCount": backlog.shards,
        "ConsumerCount": 0,
    }


def shard(backlog: Backlog, index: int) -> dict[str, object]:
    width = 2**128 // backlog.shards
    last = index == backlog.shards - 1
    return {
        "ShardId": backlog.shard_id(index),
        "HashKeyRange": {
            "StartingHashKey": str(index * width),
            "EndingHashKey": str(2**128 - 1 if last else (index + 1) * width - 1),
        },
        "SequenceNumberRange": {"StartingSequenceNumber": f"{(index + 1) * 10**20:056d}"},
    }


class BacklogServer:
    """Runs the stand-in on a loopback port in a thread; `url` once started."""

    def __init__(self, backlog: Backlog) -> None:
        self.backlog = backlog
        self.url = ""
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stop: Callable[[], None] | None = None

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("the backlog Kinesis server did not start")

    def _serve(self) -> None:
        import asyncio

        loop = asyncio.new_event_loop()
        runner = web.AppRunner(application(self.backlog), access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        stopped = asyncio.Event()
        self._stop = lambda: loop.call_soon_threadsafe(stopped.set)
        self._ready.set()
        loop.run_until_complete(stopped.wait())
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
        self._thread.join(timeout=10)
