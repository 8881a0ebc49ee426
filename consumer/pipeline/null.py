"""A sink that applies nothing: for benchmarks and for measuring the consumer's own cost."""

from __future__ import annotations

from collections.abc import Sequence

from consumer.pipeline.sink import NO_FAILURES, Failures
from consumer.records import ChangeEvent


class NullSink:
    """Accepts every change."""

    name = "null"
    buffered = False

    async def write(self, events: Sequence[ChangeEvent]) -> Failures:
        return NO_FAILURES

    async def aclose(self) -> None:
        return None
