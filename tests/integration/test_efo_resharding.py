"""Enhanced fan-out through resharding, against servers as strict as AWS.

- `consumer run` (real leases on moto) in EFO mode through a split and a merge, against the
  stateful SubscribeToShard server (tests/efo_server): it ends a closed shard's subscription
  the way AWS documents it (a last SubscribeToShardEvent with a null ContinuationSequenceNumber
  and ChildShards) and enforces AWS's 5 s ResourceInUse rule.
- A consumer deregistered while in use is registered again; the shard is not ended.
- kinesis-mock's own SubscribeToShard never ends a closed shard (it keeps sending empty events
  after UpdateShardCount): the reader decides shard end from ListShards instead, and says so.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog

from consumer.aws import AwsEndpoints
from consumer.local.stack import LocalStackState, local_endpoints
from consumer.sources.closed_shards import ClosedShardCheck
from consumer.sources.efo import EfoReader
from consumer.sources.initial_response import install_subscription_stream
from consumer.sources.lean import install_lean_get_records
from consumer.sources.model import StartPosition
from consumer.sources.registration import ensure_stream_consumer
from tests.efo_harness import (
    bridge_for,
    checkpoints,
    first_time,
    insert_items,
    replica_keys,
    reshard,
    stop_workers,
    wait_for,
)
from tests.efo_server import EfoRules, running_efo_server
from tests.service_harness import Deployment
from tests.stack_helpers import collect, new_stream, numbers, put_numbered, wait_stream_active

pytestmark = pytest.mark.integration

SHARD_END = "SHARD_END"
PARENT = "shardId-000000000000"
SPLIT_CHILDREN = ("shardId-000000000001", "shardId-000000000002")
MERGED = "shardId-000000000003"


def test_consumer_run_in_efo_mode_through_a_split_and_a_merge(
    local_stack: LocalStackState, unique_name: str
) -> None:
    # Subscriptions renewed every 20 s (AWS: 5 minutes) so renewals happen during the test.
    rules = EfoRules(lifetime_s=20)
    with running_efo_server(local_stack.kinesis_url, rules) as server:
        app = Deployment(local_stack, unique_name, shards=1)
        app.create()
        bridge = bridge_for(app)
        endpoint = {"CONSUMER_AWS__ENDPOINT_KINESIS": server.url}
        workers = [app.spawn_worker(**endpoint) for _ in range(2)]
        logs: list[dict[str, Any]] = []
        try:
            expected = insert_items(app, bridge, "before", 60)
            wait_for(lambda: replica_keys(app) >= expected, 60, "records before the split")

            reshard(
                app,
                lambda kinesis: kinesis.split_shard(
                    StreamName=app.stream, ShardToSplit=PARENT, NewStartingHashKey=str(2**127)
                ),
            )
            expected |= insert_items(app, bridge, "split", 60)
            wait_for(lambda: replica_keys(app) >= expected, 60, "records after the split")

            reshard(
                app,
                lambda kinesis: kinesis.merge_shards(
                    StreamName=app.stream,
                    ShardToMerge=SPLIT_CHILDREN[0],
                    AdjacentShardToMerge=SPLIT_CHILDREN[1],
                ),
            )
            expected |= insert_items(app, bridge, "merged", 60)
            wait_for(lambda: replica_keys(app) >= expected, 60, "records after the merge")
            wait_for(
                lambda: all(checkpoints(app).get(s) == SHARD_END for s in SPLIT_CHILDREN),
                30,
                "the merged parents at SHARD_END",
            )
        finally:
            logs = stop_workers(workers)

        # Nothing lost: every item (one INSERT each) reached the replica.
        assert replica_keys(app) == expected
        assert len(expected) == 180
        # Parents checkpointed at SHARD_END; the merged shard is open and was read.
        final = checkpoints(app)
        assert final[PARENT] == SHARD_END
        assert all(final[child] == SHARD_END for child in SPLIT_CHILDREN)
        assert final[MERGED] not in (SHARD_END, "TRIM_HORIZON")
        # The server ended each closed shard's subscription with ChildShards, as AWS does ...
        ends = dict(server.shard_end_events)
        assert ends[PARENT] == SPLIT_CHILDREN
        assert ends[SPLIT_CHILDREN[0]] == ends[SPLIT_CHILDREN[1]] == (MERGED,)
        # ... so the readers never had to fall back to the shard list.
        assert not [line for line in logs if line["event"] == "efo.shard_end_from_shard_list"]
        # Parents before children: a child is first read after its parents' SHARD_END.
        lineage = {child: (PARENT,) for child in SPLIT_CHILDREN} | {MERGED: SPLIT_CHILDREN}
        for child, parents in lineage.items():
            started = first_time(logs, "shard.start", child)
            assert started is not None, f"{child} was never read"
            for parent in parents:
                ended = first_time(logs, "shard.end", parent)
                assert ended is not None and ended <= started, (child, parent)


async def test_a_deregistered_consumer_is_registered_again_not_the_shard_ended(
    local_stack: LocalStackState, unique_name: str
) -> None:
    with running_efo_server(local_stack.kinesis_url, EfoRules(takeover_s=1.0)) as server:
        endpoints = local_endpoints(local_stack.moto_url, server.url)
        kinesis = endpoints.client("kinesis")
        arn = new_stream(kinesis, unique_name)
        put_numbered(kinesis, unique_name, 0, 10)
        shard = kinesis.list_shards(StreamName=unique_name)["Shards"][0]["ShardId"]
        async with endpoints.aio_client("kinesis") as client:
            install_lean_get_records(client)
            install_subscription_stream(client)
            # A name of its own: kinesis-mock leaves a consumer DELETING for good when another
            # stream has a consumer of the same name (a kinesis-mock bug, not AWS behaviour).
            first_arn = await ensure_stream_consumer(client, arn, unique_name)
            reader = EfoReader(client, first_arn, in_use_wait_s=1.0)
            stream = reader.read(shard, StartPosition.trim_horizon())
            first, _ = await collect(stream, 10, stop_at_shard_end=False)
            # Someone deregisters the consumer while a subscription is live: AWS ends the
            # subscription with ResourceNotFoundException, the code a deleted shard gets too.
            kinesis.deregister_stream_consumer(ConsumerARN=first_arn)
            await asyncio.sleep(2 * server.rules.consumer_check_s)  # the server has noticed
            put_numbered(kinesis, unique_name, 10, 10)
            during, batches = await asyncio.wait_for(
                collect(stream, 10, stop_at_shard_end=False), 60
            )
            await stream.aclose()
            second_arn = reader.consumer.arn
            # And once more between subscriptions: the next SubscribeToShard is refused.
            kinesis.deregister_stream_consumer(ConsumerARN=second_arn)
            put_numbered(kinesis, unique_name, 20, 5)
            stream = reader.read(shard, StartPosition.after(during[-1].sequence_number))
            after, _ = await asyncio.wait_for(collect(stream, 5, stop_at_shard_end=False), 60)
            await stream.aclose()
        consumers = kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]

    assert numbers(first) == list(range(10))
    assert numbers(during) == list(range(10, 20))
    assert numbers(after) == list(range(20, 25))
    assert not any(batch.shard_end for batch in batches)
    assert reader.consumer.reregistrations == 2
    assert len({first_arn, second_arn, reader.consumer.arn}) == 3
    assert [(c["ConsumerName"], c["ConsumerStatus"]) for c in consumers] == [
        (unique_name, "ACTIVE")
    ]
    assert server.stats["in_stream_ResourceNotFoundException"] >= 1
    assert server.stats["ResourceNotFoundException"] >= 1


async def test_kinesis_mock_update_shard_count_ends_the_parent_from_the_shard_list(
    endpoints: AwsEndpoints, unique_name: str
) -> None:
    kinesis = endpoints.client("kinesis")
    arn = new_stream(kinesis, unique_name)
    put_numbered(kinesis, unique_name, 0, 20)
    parent = kinesis.list_shards(StreamName=unique_name)["Shards"][0]["ShardId"]

    async def read_parent(client: Any) -> tuple[list[int], tuple[str, ...] | None]:
        consumer_arn = await ensure_stream_consumer(client, arn, "app")
        check = ClosedShardCheck(client, arn, interval_s=0.5, listing_ttl_s=0.0)
        reader = EfoReader(client, consumer_arn, closed_check=check)
        stream = reader.read(parent, StartPosition.trim_horizon())
        first, _ = await collect(stream, 20, stop_at_shard_end=False)
        kinesis.update_shard_count(
            StreamName=unique_name, TargetShardCount=2, ScalingType="UNIFORM_SCALING"
        )
        wait_stream_active(kinesis, unique_name)
        put_numbered(kinesis, unique_name, 20, 20)  # these go to the children
        rest, batches = await asyncio.wait_for(collect(stream, 10_000), 30)
        await stream.aclose()
        return numbers(first + rest), batches[-1].child_shard_ids

    with structlog.testing.capture_logs() as logged:
        async with endpoints.aio_client("kinesis") as client:
            install_lean_get_records(client)
            install_subscription_stream(client)
            got, children = await read_parent(client)

    listed = kinesis.list_shards(StreamName=unique_name)["Shards"]
    expected_children = tuple(
        sorted(s["ShardId"] for s in listed if s.get("ParentShardId") == parent)
    )
    assert got == list(range(20))
    assert len(expected_children) == 2 and children == expected_children
    warnings = [line for line in logged if line["event"] == "efo.shard_end_from_shard_list"]
    assert [w["shard_id"] for w in warnings] == [parent]
    assert warnings[0]["log_level"] == "warning"


def test_consumer_run_on_kinesis_mock_checkpoints_parents_after_update_shard_count(
    local_stack: LocalStackState, unique_name: str
) -> None:
    """Issue 22.4: EFO workers on kinesis-mock after UpdateShardCount."""
    app = Deployment(local_stack, unique_name, shards=2)
    app.create()
    bridge = bridge_for(app)
    workers = [app.spawn_worker()]
    try:
        expected = insert_items(app, bridge, "before", 40)
        wait_for(lambda: replica_keys(app) >= expected, 60, "records before resharding")
        reshard(
            app,
            lambda kinesis: kinesis.update_shard_count(
                StreamName=app.stream, TargetShardCount=4, ScalingType="UNIFORM_SCALING"
            ),
        )
        expected |= insert_items(app, bridge, "after", 40)
        wait_for(lambda: replica_keys(app) >= expected, 60, "records after resharding")
    finally:
        logs = stop_workers(workers)
    final = checkpoints(app)
    kinesis = app.endpoints.client("kinesis")
    shards = kinesis.list_shards(StreamName=app.stream)["Shards"]
    closed = [s["ShardId"] for s in shards if "EndingSequenceNumber" in s["SequenceNumberRange"]]
    assert closed
    assert all(final[shard] == SHARD_END for shard in closed)
    assert replica_keys(app) == expected
    warned = {line["shard_id"] for line in logs if line["event"] == "efo.shard_end_from_shard_list"}
    assert warned == set(closed)
