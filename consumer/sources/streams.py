"""DynamoDB Streams reader (README, "DynamoDB Streams"): the polling reader's loop. A RawRecord
carries one stream record as JSON in AWS's wire shape (as Lambda passes it on): binaries in
base64, ApproximateCreationDateTime in epoch seconds. At most 2 readers per shard (1 for global
tables): the service runs one, polling well under the shard's GetRecords rate."""

from __future__ import annotations

from typing import Any

import orjson

from consumer.aws.shards import streams_shards
from consumer.records.batch import RawRecord
from consumer.sources.lean import install_lean_get_records
from consumer.sources.model import StartKind, StartPosition
from consumer.sources.polling import Pacing, PollingReader, RecordLimit

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


class DynamoDBStreamsReader(PollingReader):
    """Reads one DynamoDB Streams shard. `client` is an aiobotocore dynamodbstreams client on
    which `install_lean_streams` was called."""

    _gone = "stream shard"
    _events = "streams."
    _refresh_codes = frozenset({"ExpiredIteratorException", "TrimmedDataAccessException"})
    _trimmed_event = "streams.trimmed"  # the position is older than 24 h
    _stamps_read_at = False

    def __init__(self, client: Any, stream_arn: str, interval_s: float = 0.5) -> None:
        if not 0.25 <= interval_s <= 10:
            raise ValueError(f"streams polling interval must be 0.25..10 s, got {interval_s}")
        super().__init__(client, stream_arn)
        self._stream = {"StreamArn": stream_arn}
        self._stream_arn = stream_arn
        self._interval_s = interval_s

    def _iterator_args(self, start: StartPosition) -> dict[str, object]:
        if start.kind is StartKind.AT_TIMESTAMP:
            raise ValueError("DynamoDB Streams cannot start AT_TIMESTAMP (use Kinesis for replay)")
        return start.iterator_args(sequence="SequenceNumber")

    def _pacing(self) -> Pacing:
        return Pacing(self._interval_s, RecordLimit(STREAMS_GET_RECORDS_LIMIT, None), None)

    def _records(self, body: dict[str, Any]) -> list[RawRecord]:
        return [_stream_record(record) for record in body.get("Records") or []]

    async def _children(self, shard_id: str, body: dict[str, Any]) -> tuple[str, ...]:
        shards = await streams_shards(self._client, self._stream_arn)
        return tuple(s["ShardId"] for s in shards if s.get("ParentShardId") == shard_id)
