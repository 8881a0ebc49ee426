"""Where the AWS services are: endpoints, region and credentials, and client factories.

Production leaves every endpoint unset (boto3 resolves the real ones and the ECS task role);
the local stack points each service at an emulator on loopback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.config import Config

from consumer.aws.fencing import fenced_socket

Service = Literal[
    "kinesis", "dynamodb", "dynamodbstreams", "s3", "sqs", "cloudformation", "secretsmanager"
]

# Timeouts sized for a long-lived service: fail fast on connect, retry in our own loops.
# Sockets check a sink write's lease right before each send (consumer.aws.fencing).
_DEFAULT_CONFIG = AioConfig(
    connect_timeout=5,
    read_timeout=30,
    retries={"max_attempts": 3, "mode": "standard"},
    connector_args={"socket_factory": fenced_socket},
)


# Every live EFO subscription holds one HTTP connection for up to 5 minutes, and botocore's
# pool allows 10: a worker with more shards would read only 10 of them. Connections are opened
# on demand, so a high cap costs nothing until shards need it.
KINESIS_MAX_CONNECTIONS = 1024
_KINESIS_CONFIG = _DEFAULT_CONFIG.merge(Config(max_pool_connections=KINESIS_MAX_CONNECTIONS))


@dataclass(frozen=True)
class AwsEndpoints:
    """Region, optional static credentials and an optional endpoint URL per service."""

    region: str = "us-east-1"
    endpoint_urls: Mapping[str, str] = field(default_factory=dict)
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def endpoint_for(self, service: Service) -> str | None:
        return self.endpoint_urls.get(service)

    def client_kwargs(self, service: Service) -> dict[str, Any]:
        config = _KINESIS_CONFIG if service == "kinesis" else _DEFAULT_CONFIG
        kwargs: dict[str, Any] = {"region_name": self.region, "config": config}
        endpoint = self.endpoint_for(service)
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        if self.access_key_id and self.secret_access_key:
            kwargs["aws_access_key_id"] = self.access_key_id
            kwargs["aws_secret_access_key"] = self.secret_access_key
        return kwargs

    def client(self, service: Service) -> Any:
        """A synchronous boto3 client (CLI commands, the local bridge, tests)."""
        return boto3.session.Session().client(service, **self.client_kwargs(service))

    def aio_session(self) -> AioSession:
        return get_session()

    def aio_client(self, service: Service, session: AioSession | None = None) -> Any:
        """An aiobotocore client context manager: `async with endpoints.aio_client(...) as c`."""
        return (session or get_session()).create_client(service, **self.client_kwargs(service))
