"""LOCAL ONLY: who owned which shard when, and what was applied meanwhile.

- `LeaseWatch`: a thread that reads the lease table (consistent scans, a few per second) and
  keeps every change of a shard's (owner, leaseCounter) with the times the scan was sent and
  answered.
- `read_acquisitions`: the workers' own "lease.acquired" / "lease.handed_off" log lines.
- `processing_without_lease`: replica writes (from `proxy.ApplyLogProxy`) a worker sent for a
  shard after the lease table showed its fencing token superseded. Evidence of a supersede
  must be certain: a later token held by another worker, seen in a scan *answered* before the
  write arrived, or another worker's acquisition of a later token logged before it, or the
  worker's own handoff logged before it. The write time is its arrival at the replica.
- `takeover_processing`: seconds from a kill (or SIGSTOP) of a worker until a replica write of
  each of its shards arrives from another worker: records flow again, not just a lease taken.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from consumer.aws import AwsEndpoints
from tests.chaos.faults import WorkerProcess, stream_shards
from tests.chaos.proxy import AppliedWrite

LeaseItems = Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True)
class OwnerSeen:
    sent: float  # the scan was sent (wall clock)
    answered: float  # and answered: the state held at some moment in between
    shard: str
    owner: str | None
    counter: int
    finished: bool


class LeaseWatch(threading.Thread):
    """Reads the lease table until stopped; `seen` holds each change of a shard's owner."""

    def __init__(self, leases: LeaseItems, interval_s: float = 0.3) -> None:
        super().__init__(name="chaos-leasewatch", daemon=True)
        self._leases = leases
        self._interval_s = interval_s
        self.stop_event = threading.Event()
        self.seen: list[OwnerSeen] = []
        self.scans = 0
        self.errors = 0
        self._last: dict[str, tuple[str | None, int, bool]] = {}

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.scan_once()
            self.stop_event.wait(self._interval_s)

    def scan_once(self) -> None:
        sent = time.time()
        try:
            items = self._leases()
        except Exception:  # the table is not there yet, or moto is busy: try again
            self.errors += 1
            return
        answered = time.time()
        self.scans += 1
        for item in items:
            shard = item["leaseKey"]["S"]
            owner = item.get("leaseOwner", {}).get("S")
            counter = int(item.get("leaseCounter", {}).get("N", "0"))
            finished = item.get("checkpoint", {}).get("S") == "SHARD_END"
            state = (owner, counter, finished)
            if self._last.get(shard) != state:
                self._last[shard] = state
                self.seen.append(OwnerSeen(sent, answered, shard, owner, counter, finished))

    def owners_ever(self) -> set[str]:
        return {seen.owner for seen in self.seen if seen.owner}


@dataclass(frozen=True)
class LeaseLogEvent:
    at: float
    worker_id: str
    shard: str
    kind: str  # "acquired" | "handed_off"
    token: int | None


def read_acquisitions(workers: list[WorkerProcess]) -> list[LeaseLogEvent]:
    events: list[LeaseLogEvent] = []
    for worker in workers:
        try:
            lines = worker.log_path.read_bytes().splitlines()
        except OSError:
            continue
        for line in lines:
            if not line.startswith(b"{"):
                continue
            try:
                entry: Any = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line torn by kill -9
            name = entry.get("event")
            kind = {"lease.acquired": "acquired", "lease.handed_off": "handed_off"}.get(name)
            if kind is None or "shard" not in entry or "timestamp" not in entry:
                continue
            at = datetime.fromisoformat(str(entry["timestamp"]).replace("Z", "+00:00"))
            token = entry.get("token")
            events.append(
                LeaseLogEvent(
                    at.timestamp(),
                    worker.worker_id,
                    str(entry["shard"]),
                    kind,
                    int(token) if token is not None else None,
                )
            )
    return sorted(events, key=lambda event: event.at)


def sequence_shards(endpoints: AwsEndpoints, stream: str) -> dict[str, str]:
    """Sequence number -> shard for every record in the stream (closed shards included):
    the replica's writes name only the sequence number."""
    kinesis = endpoints.client("kinesis")
    shard_of: dict[str, str] = {}
    for shard in [shard["ShardId"] for shard in stream_shards(endpoints, stream)]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            for record in page["Records"]:
                shard_of[str(record["SequenceNumber"])] = shard
            if not page["Records"] and not page.get("MillisBehindLatest"):
                break  # caught up with an open shard (a closed one ends with no iterator)
            iterator = page.get("NextShardIterator")
    return shard_of


@dataclass(frozen=True)
class ShardWrite:
    at: float
    worker_id: str
    shard: str
    sequence_number: str


def shard_writes(
    applied: list[AppliedWrite], shard_of_sequence: dict[str, str]
) -> tuple[list[ShardWrite], int]:
    """The replica writes with their shard (from the delivery logs); and how many had none."""
    writes, unknown = [], 0
    for write in applied:
        shard = shard_of_sequence.get(write.sequence_number)
        if shard is None:
            unknown += 1
            continue
        writes.append(ShardWrite(write.at, write.worker_id, shard, write.sequence_number))
    return writes, unknown


@dataclass
class LeaseVerdicts:
    without_lease: int = 0
    max_late_s: float = 0.0
    no_acquisition: int = 0  # writes by a worker with no logged acquisition of that shard
    examples: list[str] = field(default_factory=list)


def _superseded_at(
    worker_id: str,
    shard: str,
    acquired_at: float,
    token: int,
    before: float,
    seen: list[OwnerSeen],
    log_events: list[LeaseLogEvent],
) -> tuple[float, str] | None:
    """The earliest certain moment before `before` at which the table no longer had
    `worker_id` holding `shard` under `token`, and what shows it (None: no such evidence)."""
    moments = [
        (observed.answered, f"the table showed {observed.owner} with token {observed.counter}")
        for observed in seen
        if observed.shard == shard
        and observed.counter > token
        and observed.owner != worker_id
        and observed.answered < before
    ]
    moments += [
        (event.at, f"{event.worker_id} logged {event.kind} (token {event.token})")
        for event in log_events
        if event.shard == shard
        and event.at < before
        and (
            (
                event.kind == "acquired"
                and event.worker_id != worker_id
                and event.token is not None
                and event.token > token
            )
            or (
                event.kind == "handed_off"
                and event.worker_id == worker_id
                and event.at > acquired_at
            )
        )
    ]
    return min(moments) if moments else None


def processing_without_lease(
    writes: list[ShardWrite], seen: list[OwnerSeen], log_events: list[LeaseLogEvent]
) -> LeaseVerdicts:
    acquisitions: dict[tuple[str, str], list[LeaseLogEvent]] = defaultdict(list)
    for event in log_events:
        if event.kind == "acquired" and event.token is not None:
            acquisitions[(event.worker_id, event.shard)].append(event)
    verdicts = LeaseVerdicts()
    for write in writes:
        mine = [a for a in acquisitions[(write.worker_id, write.shard)] if a.at <= write.at]
        if not mine:
            verdicts.no_acquisition += 1
            continue
        last = mine[-1]
        assert last.token is not None
        superseded = _superseded_at(
            write.worker_id, write.shard, last.at, last.token, write.at, seen, log_events
        )
        if superseded is None:
            continue
        lost_at, evidence = superseded
        verdicts.without_lease += 1
        late = write.at - lost_at
        verdicts.max_late_s = max(verdicts.max_late_s, late)
        if len(verdicts.examples) < 5:
            verdicts.examples.append(
                f"{write.worker_id} wrote {write.shard}@{write.sequence_number} at "
                f"{write.at:.3f}, {late:.2f}s after its token {last.token} was superseded "
                f"({evidence} at {lost_at:.3f})"
            )
    return verdicts


@dataclass(frozen=True)
class Stoppage:
    """A worker killed (or SIGSTOPped) at `at` while holding `shards`."""

    at: float
    how: str
    worker_id: str
    shards: tuple[str, ...]


@dataclass
class TakeoverTimes:
    seconds: list[float] = field(default_factory=list)
    never: int = 0  # shards whose records never flowed again from another worker
    shards_ended: int = 0  # closed and fully read: nothing left to flow
    details: list[str] = field(default_factory=list)


def takeover_processing(
    stoppages: list[Stoppage], writes: list[ShardWrite], finished_shards: set[str]
) -> TakeoverTimes:
    times = TakeoverTimes()
    for stop in stoppages:
        for shard in stop.shards:
            flowed = [
                w.at
                for w in writes
                if w.shard == shard and w.worker_id != stop.worker_id and w.at > stop.at
            ]
            if flowed:
                took = min(flowed) - stop.at
                times.seconds.append(took)
                times.details.append(
                    f"{stop.how} {stop.worker_id}: {shard} flowed after {took:.1f}s"
                )
            elif shard in finished_shards:
                times.shards_ended += 1
            else:
                times.never += 1
                times.details.append(f"{stop.how} {stop.worker_id}: {shard} never flowed again")
    return times
