"""Issue 15.3, the last gap: no sink request leaves after the lease's local expiry, even when
the event loop stalls between the last check and the write to the socket.

The EFO chaos run (seed 251190) saw one replica PutItem arrive 3.33 s after another worker
held the shard. The request had passed the fence in botocore's `before-send`; then aiohttp
opened a new connection (moto answers `Connection: close`), the loop stalled 6 s in that await,
and the bytes left once it ended. Between `before-send` and the socket write there are awaits
(connection pool, connect, trace hooks): a check anywhere before them leaves that window.
The fence is now also checked by the socket itself, synchronously, in `send`.

The stall here is the chaos fault itself, a blocking `time.sleep` on the loop, injected right
after the TCP connection is made (or right after the `before-send` check), longer than the
local expiry. A checking proxy in front of moto (tests/chaos/proxy.py, on its own thread, so
the stall does not hold it) notes when each replica write arrives. For S3 (audit) and SQS
(DLQ), moto's state says whether a request arrived: a refused one is never applied.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio

from checkpoints.errors import LeaseLost
from consumer.aws import AwsEndpoints
from consumer.aws.fencing import fenced
from consumer.pipeline.audit.settings import AuditSettings
from consumer.pipeline.audit.sink import AuditSink
from consumer.pipeline.dlq import ParkedRecord, SqsDeadLetterQueue
from consumer.pipeline.replication import (
    ReplicationSection,
    ReplicationSink,
    replica_client,
)
from consumer.pipeline.sink import SinkError
from tests.change_factory import insert
from tests.chaos.proxy import ApplyLogProxy, OutageProxy, ProxyThread, ThrottlingProxy
from tests.replica_table import live_items

pytestmark = pytest.mark.integration

EXPIRY_S = 0.4
STALL_S = EXPIRY_S * 2.5


class LocalLease:
    """The lease's local validity as LeaseHandle.ensure_owned judges it: a monotonic deadline
    that nothing renews (the loop is stalled). `expires_wall` is the same moment by the wall
    clock, to compare with the proxy's arrival times."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + EXPIRY_S
        self.expires_wall = time.time() + EXPIRY_S

    def ensure_owned(self) -> None:
        if time.monotonic() >= self.deadline:
            raise LeaseLost("s1", "this worker's heartbeat lapsed (local expiry)")


class StallAfterConnect:
    """Blocks the event loop (the chaos fault) right after the next TCP connection is made."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._connect = loop.create_connection
        self.stalls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        connection = await self._connect(*args, **kwargs)
        if not self.stalls:
            self.stalls += 1
            time.sleep(STALL_S)  # noqa: ASYNC251  # the stall under test
        return connection


@pytest.fixture
def stall_after_connect(monkeypatch: pytest.MonkeyPatch) -> Callable[[], StallAfterConnect]:
    def arm() -> StallAfterConnect:
        loop = asyncio.get_running_loop()
        stall = StallAfterConnect(loop)
        monkeypatch.setattr(loop, "create_connection", stall)
        return stall

    return arm


@pytest.fixture
def apply_log(endpoints: AwsEndpoints) -> Iterator[tuple[ApplyLogProxy, AwsEndpoints]]:
    """worker -> TCP proxy -> apply log -> moto; endpoints that send DynamoDB through it."""
    moto = endpoints.endpoint_for("dynamodb")
    assert moto is not None
    applies = ApplyLogProxy(moto)
    proxies = ProxyThread(OutageProxy("127.0.0.1", 0), ThrottlingProxy(moto, seed=0), applies)
    proxies.start()
    try:
        yield (
            applies,
            AwsEndpoints(
                region=endpoints.region,
                endpoint_urls={"dynamodb": f"http://127.0.0.1:{proxies.outage.port}"},
                access_key_id=endpoints.access_key_id,
                secret_access_key=endpoints.secret_access_key,
            ),
        )
    finally:
        proxies.stop()


async def _write_under_lease(sink: ReplicationSink, lease: LocalLease) -> BaseException | None:
    events = [insert(key, 1_000_000 + n, n) for n, key in enumerate(["a", "b"], start=1)]
    try:
        with fenced(lease.ensure_owned):
            await sink.write(events)
    except Exception as error:  # judged by the caller
        return error
    return None


async def test_no_replica_write_arrives_after_a_stall_between_connect_and_send(
    apply_log: tuple[ApplyLogProxy, AwsEndpoints],
    replica: tuple[Any, str],
    stall_after_connect: Callable[[], StallAfterConnect],
) -> None:
    applies, through_proxy = apply_log
    _, replica_table = replica
    async with replica_client(through_proxy, transform=False) as client:
        sink = ReplicationSink(client, ReplicationSection(table=replica_table, concurrency=1))
        stall = stall_after_connect()
        lease = LocalLease()
        error = await _write_under_lease(sink, lease)
        late = [write.at - lease.expires_wall for write in applies.applied]
        assert stall.stalls == 1  # the write did connect, and the loop stalled after it
        assert [lag for lag in late if lag > 0] == []  # nothing arrived after the expiry
        assert isinstance(error, LeaseLost)  # the pipeline treats it as the lease lost
        assert await live_items(client, replica_table) == []


async def test_no_replica_write_arrives_after_a_stall_after_the_before_send_check(
    apply_log: tuple[ApplyLogProxy, AwsEndpoints], replica: tuple[Any, str]
) -> None:
    applies, through_proxy = apply_log
    _, replica_table = replica
    async with replica_client(through_proxy, transform=False) as client:
        sink = ReplicationSink(client, ReplicationSection(table=replica_table, concurrency=1))
        stalls: list[float] = []

        def stall_once(**_: Any) -> None:  # runs after the sink's own before-send fence
            if not stalls:
                stalls.append(time.monotonic())
                time.sleep(STALL_S)  # the stall under test

        client.meta.events.register("before-send.dynamodb.PutItem", stall_once)
        lease = LocalLease()
        error = await _write_under_lease(sink, lease)
        assert stalls  # the first request passed the fence, then the loop stalled
        assert [w.at for w in applies.applied if w.at > lease.expires_wall] == []
        assert isinstance(error, LeaseLost)


@pytest_asyncio.fixture
async def s3_bucket(endpoints: AwsEndpoints, unique_name: str) -> AsyncIterator[tuple[Any, str]]:
    async with endpoints.aio_client("s3") as s3:
        await s3.create_bucket(Bucket=unique_name)
        yield s3, unique_name


async def test_no_audit_object_is_written_after_a_stall_between_connect_and_send(
    s3_bucket: tuple[Any, str],
    endpoints: AwsEndpoints,
    stall_after_connect: Callable[[], StallAfterConnect],
) -> None:
    admin, bucket = s3_bucket
    async with endpoints.aio_client("s3") as s3:
        sink = AuditSink(AuditSettings(bucket=bucket, sse="none", put_attempts=2), store=s3)
        await sink.write([insert("a", 1_000_000, 1)])
        stall = stall_after_connect()
        lease = LocalLease()
        with pytest.raises(SinkError) as raised, fenced(lease.ensure_owned):
            await sink.flush()
        # The sink says which buffer was not written; the pipeline's own check then stops.
        assert isinstance(raised.value.__cause__, LeaseLost)
        assert stall.stalls == 1
    listed = await admin.list_objects_v2(Bucket=bucket)
    assert listed.get("KeyCount", 0) == 0


async def test_no_dlq_message_is_sent_after_a_stall_between_connect_and_send(
    endpoints: AwsEndpoints,
    unique_name: str,
    stall_after_connect: Callable[[], StallAfterConnect],
) -> None:
    async with endpoints.aio_client("sqs") as sqs:
        queue_url = (await sqs.create_queue(QueueName=unique_name))["QueueUrl"]
        dlq = SqsDeadLetterQueue(sqs, queue_url, max_message_bytes=250_000)
        record = ParkedRecord(
            pipeline="replication",
            error="poison",
            error_type="SinkError",
            stream="stream",
            shard_id="s1",
            sequence_number="1",
            sub_sequence_number=0,
            arrival_ms=None,
            event_id="e1",
            raw=b"{}",
            attempts=1,
        )
        stall = stall_after_connect()
        lease = LocalLease()
        with pytest.raises(LeaseLost), fenced(lease.ensure_owned):
            await dlq.park([record])
        assert stall.stalls == 1
        assert await dlq.depth() == 0
