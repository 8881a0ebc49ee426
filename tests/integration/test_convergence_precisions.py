"""`consumer run` end to end: the replica and the local search index equal the table, with the
destination's records in MICROSECOND and in MILLISECOND precision, under duplicates and
reordering (issue 14.4).

AWS: the Kinesis destination's ApproximateCreationDateTimePrecision is MILLISECOND unless set
to MICROSECOND, and its records may be duplicated and out of order ("Change data capture for
Kinesis Data Streams with DynamoDB", DynamoDB Developer Guide). The bridge emits several
changes of a busy item per millisecond in MILLISECOND mode, plus late duplicates: the copy of
the older change of a tie has the higher sequence number.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from consumer.local.bridge import BridgeOptions, DestinationBridge
from consumer.local.stack import LocalStackState
from consumer.verify.check import check_sinks
from tests.service_harness import Deployment

pytestmark = pytest.mark.integration

ITEMS = 5
CHANGES = 120


def write_busy_items(app: Deployment, seed: int) -> None:
    """Changes to a few items, so that one item often changes several times per
    millisecond: puts, updates and deletes. A counter makes every state distinct (a state
    the item had before would make a cycle, which no record can order)."""
    dynamodb = app.endpoints.client("dynamodb")
    rng = random.Random(seed)
    # Random changes, then a burst of three changes per item (consecutive changes share a
    # millisecond in the bridge's MILLISECOND mode): the final state of each item is a tie.
    plan = [rng.randrange(ITEMS) for _ in range(CHANGES)]
    plan += [item for item in range(ITEMS) for _ in range(3)]
    for counter, item_number in enumerate(plan):
        key = {"pk": {"S": f"busy#{item_number}"}}
        roll = rng.random() if counter < CHANGES else 1.0
        if roll < 0.15:
            dynamodb.delete_item(TableName=app.table, Key=key)
        elif roll < 0.5:
            item = {**key, "n": {"N": str(counter)}, "status": {"S": rng.choice("ABC")}}
            dynamodb.put_item(TableName=app.table, Item=item)
        else:
            dynamodb.update_item(
                TableName=app.table,
                Key=key,
                UpdateExpression="SET n = :n, note = :note",
                ExpressionAttributeValues={
                    ":n": {"N": str(counter)},
                    ":note": {"S": rng.choice(["x", "y", "z"])},
                },
            )


def ties_in_stream(app: Deployment) -> int:
    """Distinct changes in the stream that share an item and a millisecond with another
    (copies of one change count once)."""
    kinesis = app.endpoints.client("kinesis")
    groups: dict[tuple[str, int], set[str]] = defaultdict(set)
    for shard in kinesis.list_shards(StreamName=app.stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=app.stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            for record in response["Records"]:
                change = orjson.loads(record["Data"])
                body = change["dynamodb"]
                created = body["ApproximateCreationDateTime"]
                if body["ApproximateCreationDateTimePrecision"] == "MICROSECOND":
                    created //= 1000
                groups[(orjson.dumps(body["Keys"]).decode(), created)].add(change["eventID"])
            if not response["Records"]:
                break
            iterator = response.get("NextShardIterator")
    return sum(len(ids) for ids in groups.values() if len(ids) > 1)


@pytest.mark.parametrize("precision", ["MICROSECOND", "MILLISECOND"])
def test_replica_and_search_equal_the_table_in_both_precisions(
    local_stack: LocalStackState, unique_name: str, tmp_path: Path, precision: str
) -> None:
    app = Deployment(local_stack, unique_name, shards=1)
    app.create()
    write_busy_items(app, seed=21)
    endpoints = app.endpoints
    bridge = DestinationBridge(
        endpoints.client("dynamodbstreams"),
        endpoints.client("kinesis"),
        app.table,
        app.stream,
        endpoints.region,
        BridgeOptions(duplicate_rate=0.5, reorder_rate=0.2, seed=4, precision=precision),
    )
    while bridge.pump():
        pass
    assert bridge.stats.duplicates > 0
    ties = ties_in_stream(app)
    assert ties > 20 if precision == "MILLISECOND" else ties == 0
    exit_code = app.run_in_process(
        CONSUMER_PIPELINES__SEARCH__ENABLED="true",
        CONSUMER_PIPELINES__SEARCH__LOCAL_PATH=str(tmp_path),
        CONSUMER_CHECKPOINT_INTERVAL_S="0.2",
    )
    assert exit_code == 0
    source = app.source_items()
    settings = app.settings(
        CONSUMER_PIPELINES__SEARCH__ENABLED="true",
        CONSUMER_PIPELINES__SEARCH__LOCAL_PATH=str(tmp_path),
    )
    check = check_sinks(settings, app.table)  # consumer verify's code
    assert len(source) > 0
    assert not check.lines, check.lines[:10]
    assert check.equal == {"replication": len(source), "search": len(source)}
