"""The consumer's own latency: from a batch's bytes being read to its apply in each sink.

End-to-end latency is mostly the source's (DynamoDB's propagation, the emulator's or Kinesis's
delivery cadence); what the consumer adds is the time between reading a record off the socket
and a sink having applied it: read-ahead queueing, decoding, the sink call, retries. It is
kept per sink in a fixed log-scale histogram (no per-record allocation, percentiles to about
4 %), weighted by records: every record of a batch waited as long as its batch.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import dataclass, field

# When the batch a sink is being handed was read (monotonic s; None outside a delivery), for a
# sink that times its own applies per record (`consumer compare latency`'s measuring sink).
# The shard pipeline sets it in each delivery task, whose context is its own copy.
BATCH_READ_AT: ContextVar[float | None] = ContextVar("batch_read_at", default=None)

# Bucket i holds latencies in [FLOOR_S * GROWTH**i, FLOOR_S * GROWTH**(i+1)).
FLOOR_S = 0.0001
GROWTH = 1.08
BUCKETS = 200  # up to ~0.0001 * 1.08**200 s, about 48 minutes


def _bucket(seconds: float) -> int:
    if seconds <= FLOOR_S:
        return 0
    return min(BUCKETS - 1, int(math.log(seconds / FLOOR_S, GROWTH)))


def _upper_s(bucket: int) -> float:
    return FLOOR_S * GROWTH ** (bucket + 1)


@dataclass
class LatencyHistogram:
    counts: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    total: int = 0

    def add(self, seconds: float, records: int = 1) -> None:
        self.counts[_bucket(seconds)] += records
        self.total += records

    def percentile_ms(self, q: float) -> float | None:
        """The upper bound of the bucket holding the q-th percentile (nearest rank), in ms."""
        if not self.total:
            return None
        rank = max(1, math.ceil(q / 100 * self.total))
        seen = 0
        for bucket, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return _upper_s(bucket) * 1000
        return _upper_s(BUCKETS - 1) * 1000


@dataclass
class AddedLatency:
    """Per sink, how long records waited between being read and being applied."""

    by_sink: dict[str, LatencyHistogram] = field(default_factory=dict)

    def add(self, sink: str, seconds: float, records: int) -> None:
        histogram = self.by_sink.get(sink)
        if histogram is None:
            histogram = self.by_sink[sink] = LatencyHistogram()
        histogram.add(seconds, records)
