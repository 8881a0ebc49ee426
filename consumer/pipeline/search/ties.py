"""Ties in the OpenSearch index: two changes of one document with the same external version.

External versioning compares one number (the change time), so a change at a version already
stored comes back as a 409 conflict. The sink then reads the stored document (GET, realtime)
and decides the tie from the item states the two changes connect (README: Ordering and ties),
using what each document keeps under `change`: `state` (digest of the state it wrote),
`prior` (the states it is known to follow) and `sequence` (shard order, the last resort). A
winner is written again with "external_gte" at the same version.

The read and the rewrite are not atomic; a concurrent writer of the document can only be
another worker's late batch during a lease handover, and versions still keep anything newer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from consumer.pipeline.newest import sequence_token, stored_change, tie_history
from consumer.pipeline.search.document import CHANGE_FIELD, DocumentWrite
from consumer.records.ordering import encode_states

STATE_FIELD = "state"
PRIOR_FIELD = "prior"
SEQUENCE_FIELD = "sequence"
# The fields under `change` (mapping.py), keyword: compared, never searched.
TIE_MAPPINGS: dict[str, Any] = {
    STATE_FIELD: {"type": "keyword"},
    PRIOR_FIELD: {"type": "keyword"},
    SEQUENCE_FIELD: {"type": "keyword"},
}


def with_tie_fields(write: DocumentWrite, history: frozenset[str] | None = None) -> DocumentWrite:
    """The write with `change.state`, `change.prior` and `change.sequence` in its source."""
    change = dict(write.source.get(CHANGE_FIELD, {}))
    change[STATE_FIELD] = write.transition.after
    change[PRIOR_FIELD] = encode_states(write.follows_states if history is None else history)
    change[SEQUENCE_FIELD] = sequence_token(write.transition.sequence)
    return dataclasses.replace(write, source={**write.source, CHANGE_FIELD: change})


def tie_rewrite(write: DocumentWrite, found: Mapping[str, Any], sink: str) -> DocumentWrite | None:
    """For a write that conflicted, given the stored document (a GET response): the write to
    send again with "external_gte" (None: the stored document stays). A stored document
    written before the tie fields existed has UNKNOWN states: the tie goes to the write."""
    if not found.get("found") or found.get("_version") != write.version:
        return None  # newer state is there (or it vanished: the next change will tell)
    source = found.get("_source")
    change = source.get(CHANGE_FIELD) if isinstance(source, Mapping) else None
    if not isinstance(change, Mapping):
        change = {}
    stored = stored_change(
        change.get(STATE_FIELD), change.get(PRIOR_FIELD), change.get(SEQUENCE_FIELD)
    )
    shard_id = write.event.position.shard_id
    history = tie_history(write.transition, write.follows_states, stored, shard_id, sink)
    return None if history is None else with_tie_fields(write, history)
