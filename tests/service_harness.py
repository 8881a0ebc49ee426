"""Setting up a source table, its Kinesis stream and the service's resources on the local stack,
and running workers against them (in-process or as `consumer run` processes)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from consumer.aws import AwsEndpoints
from consumer.local import resources
from consumer.local.bridge import BridgeOptions, BridgeStats, DestinationBridge
from consumer.local.sample_orders import create_kinesis_stream, create_source_table
from consumer.local.stack import LocalStackState
from consumer.service.runtime import serve
from consumer.settings import Settings
from tests.replica_table import live_items


def replica_items(endpoints: AwsEndpoints, table: str) -> list[dict[str, Any]]:
    """Every live item of the replica `table`."""

    async def read() -> list[dict[str, Any]]:
        async with endpoints.aio_client("dynamodb") as client:
            return await live_items(client, table)

    return asyncio.run(read())


@dataclass
class Deployment:
    """One application's resources on the local stack, named after `name`."""

    state: LocalStackState
    name: str
    shards: int = 2

    @property
    def endpoints(self) -> AwsEndpoints:
        return self.state.endpoints()

    @property
    def table(self) -> str:
        return f"{self.name}-orders"

    @property
    def stream(self) -> str:
        return f"{self.name}-cdc"

    @property
    def replica(self) -> str:
        return f"{self.name}-replica"

    @property
    def queue_url(self) -> str:
        return f"{self.state.moto_url}/000000000000/{self.name}-dlq"

    def create(self, replica: bool = True) -> None:
        endpoints = self.endpoints
        create_source_table(endpoints.client("dynamodb"), self.table)
        create_kinesis_stream(endpoints.client("kinesis"), self.stream, self.shards)
        endpoints.client("sqs").create_queue(QueueName=f"{self.name}-dlq")
        if replica:
            self.create_replica()

    def create_replica(self) -> None:
        resources.create_replica(self.endpoints, self.replica)

    def bridge(self, options: BridgeOptions | None = None) -> BridgeStats:
        endpoints = self.endpoints
        bridge = DestinationBridge(
            endpoints.client("dynamodbstreams"),
            endpoints.client("kinesis"),
            self.table,
            self.stream,
            endpoints.region,
            options or BridgeOptions(),
        )
        while bridge.pump():
            pass
        return bridge.stats

    def environment(self, **extra: str) -> dict[str, str]:
        """The service's settings as CONSUMER_* environment variables."""
        env = {
            "CONSUMER_APPLICATION": self.name,
            "CONSUMER_STREAM__NAME": self.stream,
            "CONSUMER_AWS__REGION": "us-east-1",
            "CONSUMER_AWS__ENDPOINT_KINESIS": self.state.kinesis_url,
            "CONSUMER_AWS__ENDPOINT_DYNAMODB": self.state.moto_url,
            "CONSUMER_AWS__ENDPOINT_DYNAMODBSTREAMS": self.state.moto_url,
            "CONSUMER_AWS__ENDPOINT_S3": self.state.moto_url,
            "CONSUMER_AWS__ENDPOINT_SQS": self.state.moto_url,
            "CONSUMER_AWS__ACCESS_KEY_ID": "000000000000",
            "CONSUMER_AWS__SECRET_ACCESS_KEY": "local",
            "CONSUMER_PIPELINES__REPLICATION__ENABLED": "true",
            "CONSUMER_PIPELINES__REPLICATION__TABLE": self.replica,
            "CONSUMER_DLQ__QUEUE_URL": self.queue_url,
            "CONSUMER_TELEMETRY__HEALTH_PORT": "0",
            "CONSUMER_TELEMETRY__EMF": "false",
            "CONSUMER_LEASES__HEARTBEAT_INTERVAL_S": "0.5",
            "CONSUMER_LEASES__FAILOVER_S": "3",
            "CONSUMER_LEASES__TAKE_INTERVAL_S": "0.5",
            "CONSUMER_CHECKPOINT_INTERVAL_S": "0.5",
        }
        env.update(extra)
        return env

    def settings(self, **extra: str) -> Settings:
        """Settings from the same variables, without touching os.environ."""
        values: dict[str, Any] = {}
        for key, value in self.environment(**extra).items():
            path = key.removeprefix("CONSUMER_").lower().split("__")
            node = values
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        return Settings(**values)

    def run_in_process(
        self, until_idle_s: float = 3.0, timeout_s: float = 120, **extra: str
    ) -> int:
        async def main() -> int:
            return await asyncio.wait_for(
                serve(self.settings(**extra), asyncio.Event(), until_idle_s), timeout_s
            )

        return asyncio.run(main())

    def spawn_worker(
        self, until_idle_s: float | None = None, **extra: str
    ) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "consumer", "run"]
        if until_idle_s is not None:
            args += ["--until-idle", str(until_idle_s)]
        env = {**os.environ, **self.environment(**extra)}
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def source_items(self) -> list[dict[str, Any]]:
        return resources.source_items(self.endpoints, self.table)

    def replica_items(self) -> list[dict[str, Any]]:
        return replica_items(self.endpoints, self.replica)

    def lease_items(self) -> list[dict[str, Any]]:
        client = self.endpoints.client("dynamodb")
        items = client.scan(TableName=f"{self.name}-leases", ConsistentRead=True)["Items"]
        return [item for item in items if item["leaseKey"]["S"].startswith("shardId")]


def by_key(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["pk"]["S"]: item for item in items}
