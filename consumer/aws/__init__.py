"""The one AWS boundary: endpoints and clients, error classification, backoff, shard listing."""

from consumer.aws.endpoints import AwsEndpoints

__all__ = ["AwsEndpoints"]
