"""Where a record sits in its stream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consumer.records.slots import slot_builder


@dataclass(frozen=True, slots=True)
class RecordPosition:
    """A record's place in a stream: `stream` name or ARN, `shard_id` ("" when unknown, as in
    a Lambda event), `sequence_number` as sent (compare with `sequence_key`, never as strings),
    `sub_sequence_number` inside a KPL aggregate (else 0), `arrival_ms` the Kinesis
    ApproximateArrivalTimestamp in epoch ms (None for DynamoDB Streams or command-line input).
    """

    stream: str
    shard_id: str
    sequence_number: str
    sub_sequence_number: int = 0
    arrival_ms: int | None = None

    @property
    def sequence_key(self) -> tuple[int, int]:
        """(sequence number, sub-sequence number) as integers: the order within a shard;
        ValueError if the sequence number is not a decimal integer."""
        return int(self.sequence_number), self.sub_sequence_number

    def with_sub_sequence(self, sub_sequence_number: int) -> RecordPosition:
        """The same position for the user record with that index inside an aggregate."""
        if sub_sequence_number == self.sub_sequence_number:
            return self  # frozen: sharing is safe, and the common case (no aggregate) is free
        return RecordPosition(
            self.stream, self.shard_id, self.sequence_number, sub_sequence_number, self.arrival_ms
        )

    def __str__(self) -> str:
        where = f"{self.stream}/{self.shard_id}" if self.shard_id else self.stream
        return f"{where}@{self.sequence_number}.{self.sub_sequence_number}"


# The pipelines make one position per record read: built without the dataclass __init__.
new_position: Callable[[str, str, str, int, int | None], RecordPosition] = slot_builder(
    RecordPosition, ("stream", "shard_id", "sequence_number", "sub_sequence_number", "arrival_ms")
)
