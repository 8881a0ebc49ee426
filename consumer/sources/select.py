"""Choosing the reader: enhanced fan-out, with a fallback to polling when EFO is unavailable."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from consumer.records.batch import ReadBatch
from consumer.sources.efo import EfoReader
from consumer.sources.model import EfoUnavailableError, ShardReader, StartPosition
from consumer.sources.polling import PollingOptions, PollingReader
from consumer.sources.registration import ensure_stream_consumer

log = structlog.get_logger(__name__)


class ReadMode(enum.StrEnum):
    EFO = "efo"
    POLLING = "polling"


@dataclass(frozen=True)
class ReaderOptions:
    """How to read a Kinesis stream.

    With `mode` EFO the application's consumer is registered (named `consumer_name`); when EFO
    cannot be used (access denied, the stream's consumer limit reached) the reader falls back
    to polling with a warning, or fails if `fallback_to_polling` is False.
    """

    mode: ReadMode = ReadMode.EFO
    consumer_name: str = "ddb-cdc-consumer"
    fallback_to_polling: bool = True
    polling: PollingOptions = field(default_factory=PollingOptions)


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
    client: Any, stream_arn: str, options: ReaderOptions, stream_name: str | None = None
) -> ShardReader:
    """A reader for `stream_arn`; `client` must have the lean hooks installed."""
    polling = PollingReader(client, stream_arn, options.polling, stream_name=stream_name)
    if options.mode is ReadMode.POLLING:
        return polling
    try:
        consumer_arn = await ensure_stream_consumer(client, stream_arn, options.consumer_name)
    except EfoUnavailableError as error:
        if not options.fallback_to_polling:
            raise
        log.warning("efo.unavailable_using_polling", stream_arn=stream_arn, reason=str(error))
        return polling
    return EfoWithFallbackReader(
        EfoReader(client, consumer_arn), polling, options.fallback_to_polling
    )
