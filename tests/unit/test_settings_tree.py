"""One settings tree (issue 16): each component reads its own section, and composing the
sections into `Settings` changed no setting's name, order or default.

The names below are those of the settings before the sections moved next to their components
(commit 81d3389): environment variables and config file keys are a user interface."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from checkpoints.settings import LeasesSection
from consumer.pipeline.audit.sink import AuditSink
from consumer.pipeline.replication import ReplicationSink
from consumer.pipeline.search.opensearch_sink import OpenSearchSink
from consumer.service.assembly import Runtime, lease_settings
from consumer.service.sinks import PipelineClients
from consumer.settings import ENV_PREFIX, Settings, load_settings, redacted
from tests.unit.test_audit_support import MemoryStore

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"
RETRY = "max_attempts max_record_age_s bisect on_failure"
# Each section's settings, in `consumer config show` order.
SECTIONS = {
    "": "application aws stream leases pipelines dlq backfill telemetry stop_timeout_s "
    "checkpoint_interval_s",
    "aws": "region endpoint_kinesis endpoint_dynamodb endpoint_dynamodbstreams endpoint_s3 "
    "endpoint_sqs endpoint_secretsmanager access_key_id secret_access_key",
    "stream": "name arn mode consumer_name fallback_to_polling polling_interval_s "
    "read_ahead_batches read_ahead_bytes_per_shard read_ahead_bytes_per_worker "
    "initial_position dynamodb_stream_arn source_table",
    "leases": "table heartbeat_interval_s failover_s take_interval_s max_steals_per_interval "
    "destination_missing_release_s destination_missing_cool_down_s worker_id",
    "pipelines": "audit search replication null",
    "pipelines.audit": "enabled filters retry bucket prefix max_bytes max_records max_age_s sse "
    "kms_key_id expected_bucket_owner",
    "pipelines.search": "enabled filters retry endpoint index auth service region username "
    "password password_secret_arn verify_certs ca_certs timeout_s local_path",
    "pipelines.replication": "enabled filters retry table region endpoint tombstone_ttl_s "
    "include_attributes exclude_attributes transform transform_timeout_s concurrency",
    "pipelines.null": "enabled filters retry",
    **{f"pipelines.{name}.retry": RETRY for name in ("audit", "search", "replication", "null")},
    "dlq": "queue_url overflow_bucket overflow_prefix",
    "backfill": "export_bucket export_prefix version_margin_s lease_s",
    "telemetry": "log_level log_format emf emf_namespace metrics_interval_s prometheus_port "
    "health_port bind_address",
}


def sections_of(values: dict[str, Any], path: str = "") -> dict[str, str]:
    found = {path: " ".join(values)}
    for name, value in values.items():
        if isinstance(value, dict) and name != "filters":
            found.update(sections_of(value, f"{path}.{name}".lstrip(".")))
    return found


def every_setting() -> Settings:
    return load_settings(
        stream={"name": "orders"},
        leases={"heartbeat_interval_s": 1.5, "failover_s": 7, "worker_id": "w-1"},
        pipelines={
            "audit": {"enabled": True, "bucket": "audit-bucket", "sse": "none", "max_records": 9},
            "search": {"enabled": True, "endpoint": "https://search.example.com", "index": "o"},
            "replication": {"enabled": True, "table": "replica", "exclude_attributes": ["x"]},
        },
        dlq={"queue_url": QUEUE_URL},
    )


def test_settings_names_and_order_are_unchanged() -> None:
    shown = redacted(load_settings(stream={"name": "orders"}, dlq={"queue_url": QUEUE_URL}))
    assert sections_of(shown) == SECTIONS
    variables = {
        ENV_PREFIX + "__".join(f"{section}.{name}".lstrip(".").split(".")).upper()
        for section, names in SECTIONS.items()
        for name in names.split()
    }
    assert len(variables) == 115


def test_each_sink_reads_its_own_section() -> None:
    settings = every_setting()
    routes = Runtime(settings, AsyncExitStack(), PipelineClients(s3=MemoryStore())).routes(
        "shardId-0"
    )
    sinks = {route.sink.name: route.sink for route in routes}
    replication, audit, search = sinks["replication"], sinks["audit"], sinks["search"]
    assert isinstance(replication, ReplicationSink)
    assert replication.settings is settings.pipelines.replication
    assert isinstance(audit, AuditSink) and isinstance(search, OpenSearchSink)
    for sink, section in ((audit, settings.pipelines.audit), (search, settings.pipelines.search)):
        shared = set(type(sink.settings).model_fields) & set(type(section).model_fields)
        assert shared and {"enabled", "filters", "retry"}.isdisjoint(shared)
        assert {n: getattr(sink.settings, n) for n in shared if n != "region"} == {
            n: getattr(section, n) for n in shared if n != "region"
        }
    assert (audit.settings.sse, audit.settings.max_records) == ("none", 9)


def test_the_coordinator_reads_the_leases_section() -> None:
    settings = every_setting()
    assert isinstance(settings.leases, LeasesSection)
    leases = lease_settings(settings, "arn:aws:kinesis:us-east-1:123456789012:stream/orders")
    assert {name: getattr(leases, name) for name in LeasesSection.model_fields} == dict(
        settings.leases
    )
    assert leases.lease_table == settings.lease_table == "ddb-cdc-consumer-leases"
    assert leases.local_expiry_s == 7 - 7 / 3
