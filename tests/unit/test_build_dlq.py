"""What the worker says at start about records it cannot park (issue 20 item 2)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest
from structlog.testing import capture_logs

from consumer.pipeline.dlq import DlqRejectedError, ParkedRecord
from consumer.service.assembly import Runtime
from consumer.service.sinks import NoDeadLetterQueue, PipelineClients
from consumer.settings import Settings


def _settings(**dlq: str) -> Settings:
    values: dict[str, Any] = {
        "stream": {"name": "s"},
        "pipelines": {"null": {"enabled": True}},
        "dlq": dlq,
    }
    return Settings(**values)  # pydantic validates the plain sections


def test_no_dlq_is_said_once_at_start_and_parking_is_refused_for_good() -> None:
    with capture_logs() as logs:
        dlq = Runtime(_settings(), AsyncExitStack(), PipelineClients()).dead_letter_queue()
    assert isinstance(dlq, NoDeadLetterQueue)
    (line,) = [entry for entry in logs if entry["event"] == "dlq.none"]
    assert "stops its shard" in line["message"]
    record = ParkedRecord(
        "decode", "bad", "DecodeError", "s", "shardId-0", "1", 0, None, None, b"x"
    )
    with pytest.raises(DlqRejectedError):  # the shard stops (ShardStopped), never waits forever
        asyncio.run(dlq.park([record]))


def test_a_dlq_without_overflow_bucket_says_what_large_records_do() -> None:
    with capture_logs() as logs:
        settings = _settings(queue_url="http://127.0.0.1:1/q")
        Runtime(settings, AsyncExitStack(), PipelineClients()).dead_letter_queue()
    assert [entry["event"] for entry in logs] == ["dlq.no_overflow_bucket"]
