"""Choosing the reader: enhanced fan-out, with a fallback to polling when EFO is unavailable;
`StreamSection`, the settings' `stream` section."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import structlog
from pydantic import AfterValidator, Field, field_validator, model_validator

from consumer import setting_rules as rules
from consumer.records.batch import ReadBatch
from consumer.setting_rules import Section, TableName
from consumer.sources.efo import EfoReader
from consumer.sources.model import EfoUnavailableError, ShardReader, StartPosition
from consumer.sources.polling import PollingInterval, PollingOptions, PollingReader
from consumer.sources.registration import ensure_stream_consumer

log = structlog.get_logger(__name__)


class StreamSection(Section):
    """What to read and how. With `mode` efo the consumer `consumer_name` (default: the
    application name) is registered; when EFO cannot be used (access denied, the consumer limit
    reached) the reader falls back to polling with a warning, unless `fallback_to_polling` is
    off."""

    name: Annotated[str, AfterValidator(rules.kinesis_stream_name)] | None = None
    arn: Annotated[str, AfterValidator(rules.kinesis_stream_arn)] | None = None
    mode: Literal["efo", "polling", "streams"] = "efo"
    # EFO consumer name; default: the application name. Kinesis' ConsumerName rule (botocore).
    consumer_name: str | None = Field(
        None, min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_.-]+$"
    )
    fallback_to_polling: bool = True
    polling_interval_s: PollingInterval = 0.5
    read_ahead_batches: int = Field(2, ge=1, le=64)
    # Read-ahead bounded in bytes of record payload: per shard (KCL's 8 MiB), and for all
    # shards of a worker (default: an eighth of the container's memory limit, else 256 MiB).
    read_ahead_bytes_per_shard: int = Field(8 * 1024 * 1024, ge=64 * 1024, le=1024**3)
    read_ahead_bytes_per_worker: int | None = Field(None, ge=1024 * 1024)
    # Where a shard with no checkpoint starts: TRIM_HORIZON, LATEST or AT_TIMESTAMP=<ISO time>.
    initial_position: str = "TRIM_HORIZON"
    # Streams mode: the DynamoDB stream's ARN (DescribeTable's LatestStreamArn).
    dynamodb_stream_arn: Annotated[str, AfterValidator(rules.dynamodb_stream_arn)] | None = None
    # Kinesis mode: the source table, to check its destination's timestamp precision at start.
    source_table: TableName | None = None

    @field_validator("initial_position")
    @classmethod
    def _position(cls, value: str) -> str:
        if value in ("TRIM_HORIZON", "LATEST"):
            return value
        if value.startswith("AT_TIMESTAMP="):
            return rules.timestamp_position(value)
        raise ValueError("must be TRIM_HORIZON, LATEST or AT_TIMESTAMP=<ISO 8601 time>")

    @model_validator(mode="after")
    def _name_and_arn_agree(self) -> StreamSection:
        if self.name and self.arn and rules.stream_name_of_arn(self.arn) != self.name:
            raise ValueError(
                f"stream.name {self.name!r} and stream.arn (stream "
                f"{rules.stream_name_of_arn(self.arn)!r}) name different streams; give one"
            )
        return self


class EfoWithFallbackReader:
    """EFO reads; if a subscription is denied mid-run, polling carries on from the same place."""

    def __init__(self, efo: ShardReader, polling: ShardReader, fallback: bool) -> None:
        self._efo = efo
        self._polling = polling
        self._fallback = fallback
        self.fell_back = False

    async def read(self, shard_id: str, start: StartPosition) -> AsyncIterator[ReadBatch]:
        resume_after: str | None = None
        if not self.fell_back:
            try:
                async for batch in self._efo.read(shard_id, start):
                    resume_after = batch.resume_after or resume_after
                    yield batch
                    if batch.shard_end:
                        return
                return
            except EfoUnavailableError as error:
                if not self._fallback:
                    raise
                self.fell_back = True
                log.warning("efo.fallback_to_polling", shard_id=shard_id, reason=str(error))
        position = StartPosition.after(resume_after) if resume_after else start
        async for batch in self._polling.read(shard_id, position):
            yield batch


async def open_kinesis_reader(
    client: Any, stream_arn: str, stream: StreamSection, consumer_name: str
) -> ShardReader:
    """A reader for `stream_arn` as the section says; `client` must have the lean hooks
    installed. `consumer_name`: the EFO consumer (stream.consumer_name or the application)."""
    polling = PollingReader(
        client,
        stream_arn,
        PollingOptions(
            interval_s=stream.polling_interval_s,
            # an eighth of a shard's read-ahead: a batch in processing, several read ahead,
            # and a worker catching up on 100 shards holds ~100 MiB in first batches
            batch_bytes=stream.read_ahead_bytes_per_shard // 8,
        ),
        stream_name=stream.name,
    )
    if stream.mode == "polling":
        return polling
    try:
        consumer_arn = await ensure_stream_consumer(client, stream_arn, consumer_name)
    except EfoUnavailableError as error:
        if not stream.fallback_to_polling:
            raise
        log.warning("efo.unavailable_using_polling", stream_arn=stream_arn, reason=str(error))
        return polling
    return EfoWithFallbackReader(
        EfoReader(client, consumer_arn), polling, stream.fallback_to_polling
    )
