"""`--repair`: the current source state of each differing item, through the same versioned
sinks the stream feeds.

Each key's item is read again (strongly consistent) and applied as a change with version = the
time the read started: present, a MODIFY carrying the item (as a snapshot record,
`consumer.snapshot.records`); absent, a REMOVE, which leaves a tombstone. Every change made
before that time is in what was read; any change made after it has a higher version and wins,
whichever arrives first, deletes included. Its sequence number is tiny, so at an exact tie the
stream's change wins. A sink whose stored version is newer than the repair's keeps its copy
(the repair is a no-op there): that copy came from a change after the read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from consumer.aws.backoff import Backoff
from consumer.pipeline.sink import Sink, SinkError, flushing
from consumer.records import ChangeEvent, RecordPosition, decode_destination_record
from consumer.snapshot.records import change_record_data, snapshot_record_data
from consumer.snapshot.segments import wall_us
from consumer.verify.batch_get import batch_get
from consumer.verify.keys import KeyRef

ATTEMPTS = 5


@dataclass
class RepairOutcome:
    repaired: list[KeyRef] = field(default_factory=list)
    failed: list[tuple[KeyRef, str]] = field(default_factory=list)


@dataclass
class Repairer:
    """Applies the source's current state of keys to sinks. Constructors do no I/O."""

    source_client: Any
    table: str
    key_names: tuple[str, ...]
    region: str
    repair_id: str
    _: KW_ONLY
    now_us: Callable[[], int] = wall_us
    _ordinal: int = field(default=0, init=False)

    async def events(self, refs: Sequence[KeyRef]) -> list[ChangeEvent]:
        version_us = self.now_us()  # before the read: see the module docstring
        items = await batch_get(self.source_client, self.table, refs, self.key_names)
        events = []
        for ref in refs:
            self._ordinal += 1
            item = items.get(ref.doc_id)
            if item is not None:
                data = snapshot_record_data(
                    item,
                    self.key_names,
                    table=self.table,
                    region=self.region,
                    snapshot_id=self.repair_id,
                    part="repair",
                    ordinal=self._ordinal,
                    version_us=version_us,
                )
            else:
                data = change_record_data(
                    f"repair:{self.repair_id}:{self._ordinal}",
                    ref.key,
                    None,
                    self.table,
                    self.region,
                    self.repair_id,
                    version_us,
                )
            position = RecordPosition(
                stream=f"verify/{self.repair_id}",
                shard_id="repair",
                sequence_number=str(self._ordinal),
            )
            events.append(decode_destination_record(data, position))
        return events

    async def apply(self, sink: Sink, refs: Sequence[KeyRef]) -> RepairOutcome:
        outcome = RepairOutcome()
        if not refs:
            return outcome
        events = await self.events(refs)
        pending = list(range(len(refs)))
        backoff = Backoff(base_s=0.2, cap_s=5.0)
        for attempt in range(ATTEMPTS):
            try:
                failures = await sink.write([events[i] for i in pending])
                if (buffer := flushing(sink)) is not None:
                    await buffer.flush()
            except SinkError as error:
                failures = {index: error for index in range(len(pending))}
            retry: list[int] = []
            for position, index in enumerate(pending):
                failure = failures.get(position)
                if failure is None:
                    outcome.repaired.append(refs[index])
                elif failure.retryable and attempt + 1 < ATTEMPTS:
                    retry.append(index)
                else:
                    outcome.failed.append((refs[index], str(failure)))
            pending = retry
            if not pending:
                break
            await backoff.sleep()
        return outcome
