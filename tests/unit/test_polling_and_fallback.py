"""Polling retries, EFO fallback and read-ahead bounds, with fakes for what no emulator does
(expired iterators after 5 minutes, throttling, access denied)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from consumer.records.batch import RawRecord, ReadBatch
from consumer.settings import SettingsError, load_settings
from consumer.sources.model import EfoUnavailableError, StartPosition
from consumer.sources.polling import PollingOptions, PollingReader
from consumer.sources.prefetch import prefetch
from consumer.sources.select import EfoWithFallbackReader

SHARD = "shardId-000000000000"


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetRecords",
    )


class FakePollingClient:
    """Serves records 0..n-1 two per call; raises scripted errors on given calls."""

    def __init__(self, total: int, errors: dict[int, ClientError]) -> None:
        self.total = total
        self.errors = errors
        self.calls = 0
        self.iterator_requests: list[dict[str, Any]] = []

    async def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        self.iterator_requests.append(kwargs)
        if kwargs["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER":
            return {"ShardIterator": str(int(kwargs["StartingSequenceNumber"]) + 1)}
        return {"ShardIterator": "0"}

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        self.calls += 1
        if self.calls in self.errors:
            raise self.errors[self.calls]
        start = int(ShardIterator)
        numbers = range(start, min(start + 2, self.total))
        records = [
            {
                "Data": base64.b64encode(str(n).encode()).decode(),
                "SequenceNumber": str(n),
                "ApproximateArrivalTimestamp": 1.0,
                "PartitionKey": "k",
            }
            for n in numbers
        ]
        ended = start + 2 >= self.total
        body: dict[str, Any] = {"Records": records, "MillisBehindLatest": 0}
        if ended:
            body["ChildShards"] = [{"ShardId": "child-1"}]
        else:
            body["NextShardIterator"] = str(start + 2)
        return body


async def read_numbers(reader: Any) -> tuple[list[int], ReadBatch]:
    got: list[int] = []
    last: ReadBatch | None = None
    async for batch in reader.read(SHARD, StartPosition.trim_horizon()):
        got.extend(int(r.data) for r in batch.records)
        last = batch
    assert last is not None
    return got, last


async def test_expired_iterator_resumes_after_the_last_record_read() -> None:
    client = FakePollingClient(10, {3: client_error("ExpiredIteratorException")})
    reader = PollingReader(client, "arn", PollingOptions(interval_s=0.2))
    got, last = await read_numbers(reader)
    assert got == list(range(10))
    assert last.child_shard_ids == ("child-1",)
    assert client.iterator_requests[-1]["StartingSequenceNumber"] == "3"
    assert reader.iterator_refreshes == 1


@pytest.mark.parametrize(
    "error",
    [
        client_error("ProvisionedThroughputExceededException"),
        client_error("InternalFailure", 500),
        client_error("ServiceUnavailable", 503),
    ],
    ids=["throttled", "internal", "unavailable"],
)
async def test_throttling_and_5xx_back_off_and_lose_nothing(error: ClientError) -> None:
    client = FakePollingClient(6, {2: error, 3: error})
    reader = PollingReader(client, "arn", PollingOptions(interval_s=0.2))
    got, _ = await read_numbers(reader)
    assert got == list(range(6))
    assert reader.throttled == 2


async def test_an_unexpected_error_is_raised_not_swallowed() -> None:
    client = FakePollingClient(6, {1: client_error("ValidationException")})
    with pytest.raises(ClientError, match="ValidationException"):
        await read_numbers(PollingReader(client, "arn", PollingOptions(interval_s=0.2)))


@pytest.mark.parametrize("interval", [0.1, 1.5])
def test_polling_interval_out_of_range_is_a_clear_error(interval: float) -> None:
    # One rule for the reader and the setting stream.polling_interval_s (PollingInterval).
    with pytest.raises(ValueError, match=r"interval_s\n.*(greater|less) than or equal to"):
        PollingOptions(interval_s=interval)
    with pytest.raises(SettingsError, match=r"stream\.polling_interval_s .*than or equal to"):
        load_settings(stream={"name": "orders", "polling_interval_s": interval})


class DeniedEfo:
    """Delivers records 0 and 1, then the subscription is denied."""

    async def read(self, shard_id: str, start: StartPosition) -> AsyncIterator[ReadBatch]:
        yield ReadBatch(
            shard_id,
            [RawRecord(b"0", "0", 0, "k"), RawRecord(b"1", "1", 0, "k")],
            0,
            resume_after="1",
        )
        raise EfoUnavailableError("AccessDeniedException")


async def test_efo_denied_mid_run_falls_back_to_polling_from_the_same_place() -> None:
    client = FakePollingClient(6, {})
    polling = PollingReader(client, "arn", PollingOptions(interval_s=0.2))
    reader = EfoWithFallbackReader(DeniedEfo(), polling, fallback=True)
    got, _ = await read_numbers(reader)
    assert got == list(range(6))
    assert reader.fell_back
    assert client.iterator_requests[0]["StartingSequenceNumber"] == "1"


async def test_efo_denied_without_fallback_fails() -> None:
    polling = PollingReader(FakePollingClient(6, {}), "arn", PollingOptions(interval_s=0.2))
    reader = EfoWithFallbackReader(DeniedEfo(), polling, fallback=False)
    with pytest.raises(EfoUnavailableError):
        await read_numbers(reader)


async def test_prefetch_reads_at_most_max_batches_ahead() -> None:
    produced = 0

    async def source() -> AsyncIterator[int]:
        nonlocal produced
        for n in range(100):
            produced += 1
            yield n

    stream = prefetch(source(), max_batches=3)
    assert await anext(stream) == 0
    await asyncio.sleep(0.05)  # give the read-ahead task every chance to run ahead
    # one taken + 3 buffered + 1 waiting to be put
    assert produced <= 5
    rest = [n async for n in stream]
    assert rest == list(range(1, 100))


async def test_prefetch_raises_source_errors_after_the_items_before_them() -> None:
    async def source() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("reader failed")

    stream = prefetch(source(), max_batches=2)
    assert await anext(stream) == 1
    with pytest.raises(RuntimeError, match="reader failed"):
        await anext(stream)
