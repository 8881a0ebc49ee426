"""Flushing is an optional sink capability (issue 16): only a buffering sink (audit) has
`flush` and `wants_flush`; the unbuffered ones (replication, search, null) have neither, and
the pipeline checks the capability once, when its routes are built."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from consumer.pipeline.audit.settings import AuditSettings
from consumer.pipeline.audit.sink import AuditSink
from consumer.pipeline.null import NullSink
from consumer.pipeline.processor import Route
from consumer.pipeline.replication import ReplicationSection, ReplicationSink
from consumer.pipeline.search.local_index import LocalSearchIndex
from consumer.pipeline.search.opensearch_sink import OpenSearchSink
from consumer.pipeline.search.settings import LocalIndexSettings, OpenSearchSettings
from consumer.pipeline.sink import NO_FAILURES, Failures, Sink, flushing
from consumer.records import ChangeEvent
from tests.unit.test_audit_support import MemoryStore
from tests.unit.test_pipeline_processor import batch, pipeline

DOMAIN = "https://search-orders-abc123.eu-west-1.es.amazonaws.com"


def unbuffered_sinks(tmp_path: Path) -> list[Sink]:
    return [
        NullSink(),
        ReplicationSink(object(), ReplicationSection(table="replica")),
        OpenSearchSink(OpenSearchSettings(endpoint=DOMAIN)),
        LocalSearchIndex(LocalIndexSettings(directory=tmp_path)),
    ]


@pytest.mark.parametrize("index", range(4))
def test_an_unbuffered_sink_has_nothing_to_flush(tmp_path: Path, index: int) -> None:
    sink = unbuffered_sinks(tmp_path)[index]
    assert not sink.buffered
    assert flushing(sink) is None
    assert not hasattr(sink, "flush") and not hasattr(sink, "wants_flush"), sink.name


def test_the_audit_sink_is_a_flushing_sink() -> None:
    sink = AuditSink(AuditSettings(bucket="audit-bucket"), store=MemoryStore())
    assert flushing(sink) is sink


class WriteOnlySink:
    """An unbuffered sink with no flush at all: what the pipeline must work with."""

    name = "write-only"
    buffered = False

    def __init__(self) -> None:
        self.written: list[str] = []

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        self.written.extend(event.event_id for event in events)
        return NO_FAILURES

    async def aclose(self) -> None:
        return None


async def test_a_pipeline_checkpoints_drains_and_ends_a_shard_over_a_sink_without_flush() -> None:
    sink = WriteOnlySink()
    shard, _, checkpoints = pipeline([Route(sink)])
    await shard.process(batch(0, 3))
    await shard.drain()
    await shard.process(batch(3, 2, end=True))
    assert len(sink.written) == 5
    assert checkpoints.checkpoints == [("2", 0)]
    assert checkpoints.shard_end
