"""The settings a latency run gives each mode's worker when it measures against configured
(AWS) endpoints: its own application (lease table, EFO consumer), LATEST, no fallback from EFO,
no telemetry endpoints; and the one-line errors when a mode cannot run."""

from __future__ import annotations

from typing import Any

import pytest

from consumer.compare.latency.aws_env import mode_settings
from consumer.compare.latency.environment import LatencyError, Mode, check_settings
from consumer.settings import Settings

TABLE_STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00"
WITH_STREAM = {
    "LatestStreamArn": TABLE_STREAM,
    "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
}


def service_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "application": "orders-cdc",
        "stream": {"name": "orders-changes", "mode": "efo", "consumer_name": "orders-cdc"},
        "leases": {"table": "orders-cdc-leases", "worker_id": "task-1"},
        "pipelines": {"replication": {"enabled": True, "table": "orders-replica"}},
        "dlq": {"queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/orders-dlq"},
        "telemetry": {"health_port": 8080, "prometheus_port": 9100, "emf": True},
    }
    values.update(overrides)
    return Settings(**values)


@pytest.mark.parametrize("mode", ["efo", "polling"])
def test_a_kinesis_mode_runs_as_its_own_application(mode: Mode) -> None:
    base = service_settings()
    settings = mode_settings(base, mode, "orders", {})
    assert settings.application == f"orders-cdc-latency-{mode}"
    assert settings.lease_table == f"orders-cdc-latency-{mode}-leases"
    assert settings.consumer_name == f"orders-cdc-latency-{mode}"
    assert settings.leases.worker_id is None
    stream = settings.stream
    assert (stream.mode, stream.name, stream.initial_position) == (mode, "orders-changes", "LATEST")
    assert stream.fallback_to_polling is False
    telemetry = settings.telemetry
    assert (telemetry.health_port, telemetry.prometheus_port, telemetry.emf) == (None, None, False)
    # What is measured is the service's own configuration.
    assert settings.pipelines == base.pipelines and settings.dlq == base.dlq
    assert settings.aws == base.aws


def test_streams_mode_reads_the_tables_latest_stream() -> None:
    settings = mode_settings(service_settings(), "streams", "orders", WITH_STREAM)
    assert settings.stream.mode == "streams"
    assert settings.stream.dynamodb_stream_arn == TABLE_STREAM
    assert settings.application == "orders-cdc-latency-streams"


def test_streams_mode_prefers_the_configured_stream() -> None:
    configured = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/older"
    base = service_settings(stream={"name": "orders-changes", "dynamodb_stream_arn": configured})
    settings = mode_settings(base, "streams", "orders", {})
    assert settings.stream.dynamodb_stream_arn == configured


def test_streams_mode_needs_a_table_stream() -> None:
    disabled = {**WITH_STREAM, "StreamSpecification": {"StreamEnabled": False}}
    for description in ({}, disabled):
        with pytest.raises(LatencyError, match="table orders has no DynamoDB stream"):
            mode_settings(service_settings(), "streams", "orders", description)


def test_a_kinesis_mode_needs_a_kinesis_stream() -> None:
    base = service_settings(
        stream={"mode": "streams", "dynamodb_stream_arn": TABLE_STREAM},
    )
    with pytest.raises(LatencyError, match=r"mode polling needs stream\.name or stream\.arn"):
        mode_settings(base, "polling", "orders", WITH_STREAM)


def test_a_long_application_name_is_shortened_to_fit() -> None:
    base = service_settings(application="a" * 100)
    settings = mode_settings(base, "polling", "orders", {})
    assert len(settings.application) == 100
    assert settings.application.endswith("-latency-polling")


def test_settings_without_a_pipeline_have_nothing_to_measure() -> None:
    base = service_settings(pipelines={})
    with pytest.raises(LatencyError, match="enable no pipeline"):
        check_settings(base, "efo")
    with pytest.raises(LatencyError, match="enable no pipeline"):
        mode_settings(base, "efo", "orders", {})


def test_a_mode_overridden_by_the_environment_is_refused() -> None:
    with pytest.raises(LatencyError, match="unset CONSUMER_STREAM__MODE"):
        check_settings(service_settings(), "polling")
