"""BatchGetItem by key, strongly consistent, in calls of 100 keys: the source table (what the
table holds now) and the replica (what the sink holds). Unprocessed keys, throttling and 5xx
are retried with backoff; read units go through the process's limiter (the `--max-read-units`
budget covers these reads too, on the source table)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from consumer.aws.backoff import Backoff
from consumer.snapshot.rate import ReadUnitLimiter, read_with_retries
from consumer.verify.keys import KeyRef, WireItem, key_ref

BATCH_KEYS = 100  # BatchGetItem's limit per call


async def batch_get(
    client: Any,
    table: str,
    refs: Sequence[KeyRef],
    key_names: tuple[str, ...],
    *,
    limiter: ReadUnitLimiter | None = None,
) -> dict[str, WireItem]:
    """The items that exist among `refs`, by document id."""
    found: dict[str, WireItem] = {}
    unique = list({ref.doc_id: ref for ref in refs}.values())
    get = partial(client.batch_get_item, ReturnConsumedCapacity="TOTAL")
    for start in range(0, len(unique), BATCH_KEYS):
        keys = [ref.key for ref in unique[start : start + BATCH_KEYS]]
        pending: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
        backoff = Backoff(base_s=0.05, cap_s=5.0)
        while pending:
            answer = await read_with_retries(partial(get, RequestItems=pending), limiter, backoff)
            if limiter is not None:
                consumed = answer.get("ConsumedCapacity", [])
                units = sum(float(c.get("CapacityUnits", 0) or 0) for c in consumed)
                # No figure reported (an emulator): at least one unit per strongly consistent read.
                limiter.pay(units or float(len(pending[table]["Keys"])))
            for item in answer.get("Responses", {}).get(table, []):
                found[key_ref(item, key_names).doc_id] = item
            pending = answer.get("UnprocessedKeys") or {}
            if pending:
                await backoff.sleep()
    return found

