"""Client settings the service depends on."""

from __future__ import annotations

from consumer.aws import AwsEndpoints


def test_a_kinesis_client_can_hold_a_subscription_per_shard_of_a_large_worker() -> None:
    """botocore allows 10 pooled connections by default and every live SubscribeToShard holds
    one for up to 5 minutes: a worker with 12 shards read only 10 of them over EFO."""
    config = AwsEndpoints().client_kwargs("kinesis")["config"]
    assert config.max_pool_connections >= 200
    assert AwsEndpoints().client_kwargs("dynamodb")["config"].max_pool_connections == 10
