"""The local destination bridge: exact destination records, and faults injected as asked."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import defaultdict
from typing import Any

import orjson
import pytest

from consumer.aws import AwsEndpoints
from consumer.local.bridge import BridgeOptions, DestinationBridge
from consumer.local.sample_orders import (
    TTL_ATTRIBUTE,
    create_kinesis_stream,
    create_source_table,
    write_order_changes,
)
from consumer.records import ChangeEvent, DecodeError, RecordPosition, decode_kinesis_data
from consumer.sources.lean import install_lean_get_records
from consumer.sources.model import StartPosition
from consumer.sources.polling import PollingOptions, PollingReader
from tests.stack_helpers import drain

pytestmark = pytest.mark.integration


def bridged(
    endpoints: AwsEndpoints, name: str, changes: int, options: BridgeOptions, shards: int = 2
) -> tuple[DestinationBridge, list[ChangeEvent], Any]:
    dynamodb = endpoints.client("dynamodb")
    kinesis = endpoints.client("kinesis")
    create_source_table(dynamodb, name)
    arn = create_kinesis_stream(kinesis, name, shards)
    counts = write_order_changes(dynamodb, name, changes, seed=3)
    bridge = DestinationBridge(
        endpoints.client("dynamodbstreams"), kinesis, name, name, endpoints.region, options
    )
    while bridge.pump():
        pass

    async def read_all() -> list[ChangeEvent]:
        events: list[ChangeEvent] = []
        async with endpoints.aio_client("kinesis") as client:
            install_lean_get_records(client)
            reader = PollingReader(client, arn, PollingOptions(interval_s=0.2))
            for shard in kinesis.list_shards(StreamName=name)["Shards"]:
                records, _ = await drain(
                    reader.read(shard["ShardId"], StartPosition.trim_horizon())
                )
                for record in records:
                    position = RecordPosition(name, shard["ShardId"], record.sequence_number)
                    for result in decode_kinesis_data(record.data, position, strict=True):
                        assert not isinstance(result, DecodeError), str(result)
                        events.append(result)
        return events

    return bridge, asyncio.run(read_all()), counts


def test_bridge_writes_exact_destination_records(endpoints: AwsEndpoints, unique_name: str) -> None:
    bridge, events, counts = bridged(
        endpoints, unique_name, 120, BridgeOptions(ttl_attribute=TTL_ATTRIBUTE)
    )
    assert len(events) == counts.total == bridge.stats.changes == bridge.stats.written
    assert len({e.event_id for e in events}) == counts.total
    by_name = defaultdict(int)
    for event in events:
        by_name[event.event_name.value] += 1
        assert event.table == unique_name
        assert event.region == endpoints.region
        assert event.keys.python["pk"].startswith("order#")
    assert by_name["INSERT"] == counts.inserts
    assert by_name["MODIFY"] == counts.modifies
    assert by_name["REMOVE"] == counts.removes + counts.ttl_deletes
    assert sum(e.ttl_delete for e in events) == counts.ttl_deletes
    # The images are what the table held: binaries round-trip through base64.
    insert = next(e for e in events if e.event_name.value == "INSERT")
    assert insert.new_image is not None and insert.old_image is None
    assert isinstance(insert.new_image.python["signature"], bytes)
    modify = next(e for e in events if e.event_name.value == "MODIFY")
    assert modify.new_image is not None and modify.old_image is not None
    assert modify.new_image.python["version"] == modify.old_image.python["version"] + 1
    # MICROSECOND precision, unique and increasing in the order changes were made per item.
    times = [e.created_at_us for e in events]
    assert len(set(times)) == len(times)
    for event in events:
        body = orjson.loads(event.raw)
        assert body["dynamodb"]["ApproximateCreationDateTimePrecision"] == "MICROSECOND"
        assert body["recordFormat"] == "application/json"
        assert body["eventSource"] == "aws:dynamodb"
        assert set(body) == {
            "awsRegion",
            "eventID",
            "eventName",
            "userIdentity",
            "recordFormat",
            "tableName",
            "dynamodb",
            "eventSource",
        }


def binomial_ok(observed: int, trials: int, rate: float) -> bool:
    """Within 4 standard deviations of the expected count."""
    sigma = math.sqrt(trials * rate * (1 - rate))
    return abs(observed - trials * rate) <= 4 * sigma + 1


def test_injected_duplicates_and_reorderings_occur_at_the_configured_rate(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    options = BridgeOptions(duplicate_rate=0.2, reorder_rate=0.3, seed=11)
    bridge, events, counts = bridged(endpoints, unique_name, 300, options)
    stats = bridge.stats

    # Duplicates: really in the stream, at the configured rate.
    assert len(events) == counts.total + stats.duplicates
    assert len({e.event_id for e in events}) == counts.total
    assert binomial_ok(stats.duplicates, counts.total, 0.2), stats

    # Reorderings: consecutive changes of one item really arrive swapped.
    per_item: dict[str, list[ChangeEvent]] = defaultdict(list)
    seen: set[str] = set()
    for event in sorted(
        events, key=lambda e: (e.position.shard_id, int(e.position.sequence_number))
    ):
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        per_item[str(event.keys.python["pk"])].append(event)
    inversions = sum(
        1
        for item_events in per_item.values()
        for before, after in itertools.pairwise(item_events)
        if after.created_at_us < before.created_at_us
    )
    assert inversions == stats.reorderings > 0
    assert binomial_ok(stats.reorderings, stats.reorder_candidates, 0.3), stats

    # Late duplicates: some copy arrives after a newer change of its item.
    stale = 0
    newest: dict[str, int] = {}
    for event in sorted(
        events, key=lambda e: (e.position.shard_id, int(e.position.sequence_number))
    ):
        key = str(event.keys.python["pk"])
        if event.created_at_us < newest.get(key, 0):
            stale += 1
        newest[key] = max(newest.get(key, 0), event.created_at_us)
    assert stale >= inversions


@pytest.mark.parametrize(
    ("field", "value"),
    [("duplicate_rate", 1.5), ("reorder_rate", -0.1), ("precision", "SECOND")],
)
def test_bridge_options_reject_nonsense(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        BridgeOptions(**{field: value})
