"""LOCAL ONLY: each mode on its own resources on the local stack.

Per mode: a source table with a NEW_AND_OLD_IMAGES stream, a replica table, a local search
index, a dead-letter queue, and for the Kinesis modes a one-shard Kinesis stream that the
destination bridge fills from the table's stream while the mode is measured (no emulator
implements DynamoDB's Kinesis destination). The pipelines measured are replication and search.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from consumer.aws import AwsEndpoints
from consumer.compare.latency.environment import LatencyError, Mode, ModeTarget, check_settings
from consumer.compare.latency.probes import KeyAttribute, ProbeKeys
from consumer.compare.latency.writer import WrittenProbe
from consumer.local.bridge import BridgeOptions, DestinationBridge
from consumer.local.resources import create_replica
from consumer.local.sample_orders import ORDER_KEY, create_kinesis_stream, create_source_table
from consumer.local.stack import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, LocalStackState
from consumer.settings import Settings

# The Kinesis modes' polling interval and stream shards.
POLLING_INTERVAL_S = 0.5
KINESIS_SHARDS = 1
# How long the bridge sleeps when the table's stream had nothing new (DestinationBridge.run).
BRIDGE_INTERVAL_S = 0.2
# The worker's DynamoDB Streams reader polls each shard this often (its default in
# consumer/sources/streams.py; the worker does not change it).
STREAMS_POLL_S = 0.5


class LocalEnvironment:
    """Modes on a running local stack (moto server + kinesis-mock).

    `work_dir` holds the local search indexes. Constructing does no I/O; `prepare` creates
    the mode's resources, named `lat-<run id>-<mode>-...`, which live as long as the stack.
    """

    name = "local"
    notes: tuple[str, ...] = (
        "local emulators: these are not AWS latencies (kinesis-mock pushes EFO events "
        "about once a second; polling interval "
        f"{POLLING_INTERVAL_S * 1000:.0f} ms; the DynamoDB Streams reader polls "
        f"every {STREAMS_POLL_S * 1000:.0f} ms; moto and kinesis-mock share this machine "
        "with the worker)",
        "upstream (efo, polling) is the local destination bridge (it copies the table's "
        f"stream into Kinesis and sleeps {BRIDGE_INTERVAL_S * 1000:.0f} ms when idle), not "
        "DynamoDB's Kinesis destination",
    )

    def __init__(self, stack: LocalStackState, work_dir: Path) -> None:
        self._stack = stack
        self._work_dir = work_dir
        self._streams: dict[Mode, str] = {}

    @property
    def endpoints(self) -> AwsEndpoints:
        return self._stack.endpoints()

    def prepare(self, mode: Mode, run_id: str) -> ModeTarget:
        prefix = f"lat-{run_id}-{mode}"
        endpoints = self.endpoints
        dynamodb = endpoints.client("dynamodb")
        table = f"{prefix}-orders"
        table_stream_arn = create_source_table(dynamodb, table)
        replica = f"{prefix}-replica"
        create_replica(endpoints, replica, ORDER_KEY)
        queue_url = str(endpoints.client("sqs").create_queue(QueueName=f"{prefix}-dlq")["QueueUrl"])
        stream: dict[str, Any] = {
            "mode": mode,
            "initial_position": "LATEST",
            "fallback_to_polling": False,
            "polling_interval_s": POLLING_INTERVAL_S,
        }
        if mode == "streams":
            stream["dynamodb_stream_arn"] = table_stream_arn
        else:
            stream["name"] = f"{prefix}-cdc"
            create_kinesis_stream(endpoints.client("kinesis"), stream["name"], KINESIS_SHARDS)
            self._streams[mode] = stream["name"]
        settings = Settings(
            application=prefix,
            aws={
                "region": endpoints.region,
                "endpoint_kinesis": self._stack.kinesis_url,
                "endpoint_dynamodb": self._stack.moto_url,
                "endpoint_dynamodbstreams": self._stack.moto_url,
                "endpoint_s3": self._stack.moto_url,
                "endpoint_sqs": self._stack.moto_url,
                "access_key_id": LOCAL_ACCESS_KEY_ID,
                "secret_access_key": LOCAL_SECRET_ACCESS_KEY,
            },
            stream=stream,
            leases={"heartbeat_interval_s": 0.5, "failover_s": 3, "take_interval_s": 0.5},
            pipelines={
                "replication": {"enabled": True, "table": replica},
                "search": {"enabled": True, "local_path": str(self._work_dir / prefix)},
            },
            dlq={"queue_url": queue_url},
            telemetry={"health_port": None, "emf": False, "log_level": "warning"},
            checkpoint_interval_s=1.0,
        )
        check_settings(settings, mode)
        return ModeTarget(mode, settings, table, ProbeKeys(KeyAttribute(ORDER_KEY, "S")), dynamodb)

    @contextmanager
    def feeding(self, target: ModeTarget) -> Iterator[None]:
        stream = self._streams.get(target.mode)
        if stream is None:  # streams mode reads the table's stream itself
            yield
            return
        endpoints = self.endpoints
        bridge = DestinationBridge(
            endpoints.client("dynamodbstreams"),
            endpoints.client("kinesis"),
            target.table,
            stream,
            endpoints.region,
            BridgeOptions(),
        )
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="latency-bridge") as pool:
            pumping = pool.submit(bridge.run, stop, BRIDGE_INTERVAL_S)
            try:
                yield
            finally:
                stop.set()
                error = pumping.exception()
        if error is not None:
            raise LatencyError(f"the local destination bridge failed: {error}") from error

    def cleanup(self, probes: Sequence[WrittenProbe]) -> list[str]:
        return []  # every resource is the run's own and goes with the stack

