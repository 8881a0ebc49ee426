"""Snapshot items as change records the pipelines already apply: a synthetic Kinesis-destination
`MODIFY` with the item as NewImage, `ApproximateCreationDateTime` = the snapshot version in
microseconds, `eventID` = `snapshot:<id>:<part>:<ordinal>` and a `snapshot` field, through the
same decoder, retries, bisection and DLQ into the same versioned sinks.

Why MODIFY without OldImage: the sinks order changes of equal version by the state their
OldImage names (`consumer.records.ordering`); a snapshot item replaces an unknown state, and as
an INSERT it would claim to follow "no item" and beat a tombstone of the same version. Its
sequence number is its ordinal in the part, so at an exact tie the stream's change (a real
change at or after the snapshot's version) wins, which is always safe.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from consumer.records.batch import RawRecord, ReadBatch
from consumer.snapshot.table_reader import Page, WireItem, base64_bytes


def snapshot_record_data(
    item: WireItem,
    key_names: Sequence[str],
    *,
    table: str,
    region: str,
    snapshot_id: str,
    part: str,
    ordinal: int,
    version_us: int,
) -> bytes:
    """The record bytes of one snapshot item (binaries as base64, as in stream records)."""
    keys = {name: item[name] for name in key_names if name in item}
    event_id = f"snapshot:{snapshot_id}:{part}:{ordinal}"
    return change_record_data(event_id, keys, item, table, region, snapshot_id, version_us)


def change_record_data(
    event_id: str,
    keys: WireItem,
    item: WireItem | None,
    table: str,
    region: str,
    snapshot_id: str,
    version_us: int,
) -> bytes:
    """A MODIFY carrying `item`, or a REMOVE of `keys` when `item` is None."""
    change: dict[str, object] = {
        "ApproximateCreationDateTime": version_us,
        "ApproximateCreationDateTimePrecision": "MICROSECOND",
        "Keys": keys,
    }
    if item is None:
        change["SizeBytes"] = 0
    else:
        image = orjson.dumps(item, default=base64_bytes)
        change["NewImage"] = orjson.Fragment(image)
        change["SizeBytes"] = len(image)
    record = {
        "awsRegion": region,
        "eventID": event_id,
        "eventName": "REMOVE" if item is None else "MODIFY",
        "recordFormat": "application/json",
        "tableName": table,
        "dynamodb": change,
        "eventSource": "aws:dynamodb",
        "snapshot": snapshot_id,
    }
    return orjson.dumps(record, default=base64_bytes)


def page_batch(
    page: Page,
    key_names: Sequence[str],
    *,
    table: str,
    region: str,
    snapshot_id: str,
    version_us: int,
    read_ms: int,
) -> ReadBatch:
    """The page as one batch of its part, in ordinal order; a part's last page ends the part
    (SHARD_END). Bad export lines stay in the batch as they were, so the decoder parks them."""
    entries: list[tuple[int, bytes]] = [
        (
            ordinal,
            snapshot_record_data(
                item,
                key_names,
                table=table,
                region=region,
                snapshot_id=snapshot_id,
                part=page.part,
                ordinal=ordinal,
                version_us=version_us,
            ),
        )
        for ordinal, item in zip(page.ordinals(), page.items, strict=True)
    ]
    entries.extend((ordinal, raw) for ordinal, raw, _ in page.bad)
    entries.sort(key=lambda entry: entry[0])
    records = [
        RawRecord(data=data, sequence_number=str(ordinal), arrival_ms=read_ms, partition_key="")
        for ordinal, data in entries
    ]
    return ReadBatch(
        shard_id=page.part,
        records=records,
        millis_behind_latest=None,
        resume_after=None,
        child_shard_ids=() if page.last else None,
    )
