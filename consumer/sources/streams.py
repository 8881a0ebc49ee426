"""DynamoDB Streams reader ("Streams mode"), with the same interface as the Kinesis readers.

Each RawRecord carries one stream record as JSON, in the shape AWS sends it over the wire
(and Lambda passes on): binaries in base64, ApproximateCreationDateTime in epoch seconds.
DynamoDB Streams keeps 24 hours of changes and allows at most 2 concurrent readers per shard
(1 for global tables): the service runs one reader per shard, and the polling interval keeps
it well under the shard's GetRecords rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog
from botocore.exceptions import ClientError

from consumer.aws.backoff import Backoff
from consumer.aws.errors import TRANSIENT_NETWORK_ERRORS, error_code, is_retryable
from consumer.aws.shards import streams_shards
from consumer.records.batch import RawRecord, ReadBatch
from consumer.sources.lean import install_lean_get_records, lean_body
from consumer.sources.model import ShardGoneError, StartKind, StartPosition

log = structlog.get_logger(__name__)

STREAMS_GET_RECORDS_LIMIT = 1000


def install_lean_streams(client: Any) -> None:
    install_lean_get_records(client, service_event_name="dynamodb-streams")


def _stream_record(record: dict[str, Any]) -> RawRecord:
    body = record["dynamodb"]
    created = body.get("ApproximateCreationDateTime", 0)
    return RawRecord(
        data=orjson.dumps(record),
        sequence_number=str(body["SequenceNumber"]),
        arrival_ms=int(float(created) * 1000),
        partition_key="",
    )


class DynamoDBStreamsReader:
    """Reads one DynamoDB Streams shard. `client` is an aiobotocore dynamodbstreams client on
    which `install_lean_streams` was called."""

    def __init__(self, client: Any, stream_arn: str, interval_s: float = 0.5) -> None:
        if not 0.25 <= interval_s <= 10:
            raise ValueError(f"streams polling interval must be 0.25..10 s, got {interval_s}")
        self._client = client
        self._stream_arn = stream_arn
        self._interval_s = interval_s

    async def _iterator(self, shard_id: str, start: StartPosition) -> str:
        if start.kind is StartKind.AT_TIMESTAMP:
            raise ValueError("DynamoDB Streams cannot start AT_TIMESTAMP (use Kinesis for replay)")
        kwargs: dict[str, Any] = {
            "StreamArn": self._stream_arn,
            "ShardId": shard_id,
            "ShardIteratorType": start.kind.value,
        }
        if start.sequence_number:
            kwargs["SequenceNumber"] = start.sequence_number
        backoff = Backoff(base_s=0.2, cap_s=5.0)
        while True:
            try:
                return str((await self._client.get_shard_iterator(**kwargs))["ShardIterator"])
            except ClientError as error:
                code = error_code(error)
                if code == "ResourceNotFoundException":
                    raise ShardGoneError(f"stream shard {shard_id}: {error}") from error
                if code == "TrimmedDataAccessException":
                    # The position is older than 24 h: the data is gone, start at the horizon.
                    log.warning("streams.trimmed", shard_id=shard_id)
                    kwargs = {**kwargs, "ShardIteratorType": "TRIM_HORIZON"}
                    kwargs.pop("SequenceNumber", None)
                    continue
                if not is_retryable(error):
                    raise
            except TRANSIENT_NETWORK_ERRORS as error:
                log.warning("streams.get_shard_iterator.retry", error=str(error))
            await backoff.sleep()

    async def _children(self, shard_id: str) -> tuple[str, ...]:
        shards = await streams_shards(self._client, self._stream_arn)
        return tuple(s["ShardId"] for s in shards if s.get("ParentShardId") == shard_id)

    async def read(self, shard_id: str, start: StartPosition) -> AsyncIterator[ReadBatch]:
        iterator = await self._iterator(shard_id, start)
        resume_after: str | None = None
        backoff = Backoff(base_s=self._interval_s, cap_s=10.0)
        last_call = 0.0
        while True:
            wait = self._interval_s - (time.monotonic() - last_call)
            if wait > 0:
                await asyncio.sleep(wait)
            last_call = time.monotonic()
            try:
                response = await self._client.get_records(
                    ShardIterator=iterator, Limit=STREAMS_GET_RECORDS_LIMIT
                )
            except ClientError as error:
                code = error_code(error)
                if code in ("ExpiredIteratorException", "TrimmedDataAccessException"):
                    restart = StartPosition.after(resume_after) if resume_after else start
                    iterator = await self._iterator(shard_id, restart)
                    continue
                if code == "ResourceNotFoundException":
                    raise ShardGoneError(f"stream shard {shard_id}: {error}") from error
                if is_retryable(error):
                    await backoff.sleep()
                    continue
                raise
            except TRANSIENT_NETWORK_ERRORS as error:
                log.warning("streams.get_records.retry", shard_id=shard_id, error=str(error))
                await backoff.sleep()
                continue
            backoff.reset()
            body = lean_body(response)
            records = [_stream_record(record) for record in body.get("Records") or []]
            if records:
                resume_after = records[-1].sequence_number
            next_iterator = body.get("NextShardIterator")
            children = None if next_iterator else await self._children(shard_id)
            yield ReadBatch(
                shard_id=shard_id,
                records=records,
                millis_behind_latest=None,
                resume_after=resume_after,
                child_shard_ids=children,
            )
            if not next_iterator:
                return
            iterator = next_iterator
