"""A destination that is gone for good: the replica table, the audit bucket, the search index
or the dead-letter queue deleted (or never created) while the service runs.

An outage ends by itself, so a shard waits it out; a missing destination usually does not,
and a worker retrying would keep its shards from workers that may be configured correctly (a
rolling deploy with a typo'd table name). So a shard whose destination has been missing for
`bound_s` without a successful write stops with `DestinationGone`, its checkpoint before what
it could not apply, and its lease goes to another worker (`consumer/service/shard_task.py`).
The codes that mean "missing" (AWS API references, OpenSearch bulk item errors; README has
the table): `MISSING_CODES`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from botocore.exceptions import ClientError

from consumer.aws.errors import error_code

log = structlog.get_logger(__name__)

MISSING_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "NoSuchBucket",
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "index_not_found_exception",
    }
)

# The calls sinks and the DLQ make to their destinations. A missing resource met by anything
# else (e.g. a replication transform reading some other table) is that record's problem, not
# a missing destination: it must still be parked, not hand the shard around.
DESTINATION_OPERATIONS = frozenset(
    {
        "PutItem",
        "BatchWriteItem",
        "UpdateItem",
        "DeleteItem",
        "PutObject",
        "SendMessage",
        "SendMessageBatch",
        "GetQueueAttributes",
    }
)

# How many causes deep an error is searched: sinks wrap the service's error once or twice.
_CHAIN_DEPTH = 8


def missing_code(error: BaseException) -> str | None:
    """The code saying the destination does not exist, if `error` or one of its causes is
    such an error (a sink's SinkError raised from the ClientError, an OpenSearch
    DestinationRefused of kind index_not_found_exception); else None."""
    current: BaseException | None = error
    for _ in range(_CHAIN_DEPTH):
        if current is None:
            return None
        if isinstance(current, ClientError):
            code = error_code(current)
            if code in MISSING_CODES and current.operation_name in DESTINATION_OPERATIONS:
                return code
        kind = getattr(current, "kind", None)
        if isinstance(kind, str) and kind in MISSING_CODES:
            return kind
        current = current.__cause__ or current.__context__
    return None


class DestinationGone(RuntimeError):
    """A destination of this shard has been missing for longer than the bound: the shard
    stops without checkpointing past what it could not apply, and its lease is handed over."""

    def __init__(self, sink: str, code: str, missing_for_s: float) -> None:
        super().__init__(
            f"destination of {sink} missing ({code}) for {missing_for_s:.0f} s; "
            "handing the shard's lease over"
        )
        self.sink = sink
        self.code = code
        self.missing_for_s = missing_for_s


class MissingDestinations:
    """Per shard: since when each sink's destination has been missing, without a successful
    write in between. `seen_missing` raises DestinationGone once one has been missing for
    `bound_s`; `seen_present` forgets it (the destination is back)."""

    def __init__(self, bound_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.bound_s = bound_s
        self._clock = clock
        self._since: dict[str, tuple[float, str]] = {}

    @property
    def missing(self) -> dict[str, str]:
        """Sink -> the code that said its destination is missing (empty when none is)."""
        return {sink: code for sink, (_, code) in self._since.items()}

    def seen_missing(self, sink: str, code: str, shard_id: str) -> None:
        now = self._clock()
        first = self._since.get(sink)
        if first is None:
            self._since[sink] = (now, code)
            log.warning(
                "destination.missing",
                sink=sink,
                code=code,
                shard_id=shard_id,
                release_after_s=self.bound_s,
            )
            return
        missing_for = now - first[0]
        if missing_for >= self.bound_s:
            raise DestinationGone(sink, code, missing_for)

    def seen_present(self, sink: str) -> None:
        if self._since.pop(sink, None) is not None:
            log.info("destination.back", sink=sink)

    def remaining_s(self, sink: str) -> float:
        """Time left before the bound for `sink` (the bound itself if it is not missing)."""
        first = self._since.get(sink)
        if first is None:
            return self.bound_s
        return max(0.0, self.bound_s - (self._clock() - first[0]))
