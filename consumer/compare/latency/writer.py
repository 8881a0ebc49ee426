"""Writing probes into the source table at a steady pace.

Blocking (a synchronous boto3 client): run it in a thread (`asyncio.to_thread`) so the pace
does not depend on the worker's event loop, and the worker's timing does not depend on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from consumer.compare.latency.probes import (
    Item,
    ProbeKeys,
    ProbeTag,
    WallClockUs,
    probe_attributes,
    wall_us,
)


class ProbeWriteError(RuntimeError):
    """A probe could not be written (the message says which and why)."""


@dataclass(frozen=True)
class WrittenProbe:
    tag: ProbeTag
    seq: int
    written_us: int
    key: Item


class ProbeWriter:
    """Puts probe items into `table` through a boto3 DynamoDB client.

    Every put is conditional on the key being new, so a probe never overwrites a real item.
    `written` lists every probe written so far (for cleanup). Constructing does no I/O.
    """

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        keys: ProbeKeys,
        clock_us: WallClockUs = wall_us,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._dynamodb = dynamodb
        self.table = table
        self._keys = keys
        self._clock_us = clock_us
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self.written: list[WrittenProbe] = []

    def put(self, tag: ProbeTag, seq: int) -> WrittenProbe:
        """Writes probe `seq` of `tag`; its write time is taken just before the call."""
        key = self._keys.key(tag, seq)
        written_us = self._clock_us()
        try:
            self._dynamodb.put_item(
                TableName=self.table,
                Item={**key, **probe_attributes(tag, seq, written_us)},
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": self._keys.partition.name},
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            raise ProbeWriteError(
                f"cannot write probe {ProbeKeys.label(tag, seq)} into table {self.table}: "
                f"{code or error}"
            ) from error
        probe = WrittenProbe(tag, seq, written_us, key)
        with self._lock:
            self.written.append(probe)
        return probe

    def write_series(self, tag: ProbeTag, count: int, rate_per_s: float) -> list[WrittenProbe]:
        """Writes probes 0..count-1 of `tag`, the i-th at start + i / rate_per_s (right away
        when the table is slower than that)."""
        if rate_per_s <= 0:
            raise ValueError(f"rate must be > 0 probes/s, got {rate_per_s}")
        probes: list[WrittenProbe] = []
        start = self._monotonic()
        for seq in range(count):
            delay = start + seq / rate_per_s - self._monotonic()
            if delay > 0:
                self._sleep(delay)
            probes.append(self.put(tag, seq))
        return probes

    def delete(self, probes: Iterable[WrittenProbe]) -> int:
        """Deletes the given probe items; returns how many deletes succeeded."""
        deleted = 0
        for probe in probes:
            try:
                self._dynamodb.delete_item(TableName=self.table, Key=probe.key)
            except ClientError:
                continue  # reported by the caller as a count; the rest is still cleaned up
            deleted += 1
        return deleted
