"""Audit object keys and partitions: Hive-style, by arrival hour, named by the first record."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from consumer.pipeline.audit.layout import HOUR_US, ObjectLayout, Partition, partition_hour
from consumer.pipeline.audit.settings import AuditSettings
from consumer.records import RecordPosition
from tests.unit.test_audit_support import SHARD, STREAM, T0_MS, change_event, sequence


def test_key_is_prefix_table_partition_shard_and_first_position() -> None:
    event = change_event(0, sub_sequence=3)
    key = ObjectLayout("audit/").object_key(
        "orders", partition_hour(event), event.position, event.event_id
    )
    assert key == (f"audit/table=orders/dt=2024-07-03/hour=22/{SHARD}/{sequence(0)}-3.ndjson.gz")


def test_partition_is_the_arrival_hour_when_there_is_one() -> None:
    # Arrived at 2024-07-04T05:00:00Z although it was made (created_at) on 2024-07-03.
    event = change_event(0, arrival_ms=1720069200000)
    assert Partition(partition_hour(event)).path == "dt=2024-07-04/hour=05"


def test_partition_falls_back_to_the_change_time_without_arrival() -> None:
    event = change_event(0)
    no_arrival = replace(event, position=replace(event.position, arrival_ms=None))
    assert partition_hour(no_arrival) == event.created_at_us // HOUR_US
    assert Partition(partition_hour(no_arrival)).path == "dt=2024-07-03/hour=22"


@pytest.mark.parametrize(
    ("arrival_ms", "path"),
    [
        (0, "dt=1970-01-01/hour=00"),
        (T0_MS, "dt=2024-07-03/hour=22"),
        (1720051199999, "dt=2024-07-03/hour=23"),  # the last ms of the day
        (1720051200000, "dt=2024-07-04/hour=00"),
    ],
)
def test_partition_hours_are_utc_with_two_digits(arrival_ms: int, path: str) -> None:
    event = change_event(0, arrival_ms=arrival_ms)
    assert Partition(partition_hour(event)).path == path


def test_a_position_without_sequence_number_is_named_by_its_event_id() -> None:
    position = RecordPosition(STREAM, "", "", 0, T0_MS)
    key = ObjectLayout("").object_key("orders", T0_MS * 1000 // HOUR_US, position, "e-1")
    assert key == "table=orders/dt=2024-07-03/hour=22/no-shard/event-e-1-0.ndjson.gz"


def test_names_that_could_add_path_levels_are_escaped() -> None:
    position = RecordPosition(STREAM, "shard/1", "12", 0, T0_MS)
    key = ObjectLayout("p/").object_key("a/b=c", 0, position, "e")
    assert key == "p/table=a%2Fb%3Dc/dt=1970-01-01/hour=00/shard%2F1/12-0.ndjson.gz"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bucket": "Bad_Bucket"}, "bucket"),
        ({"bucket": "ab"}, "bucket"),
        ({"prefix": "audit"}, "end with '/'"),
        ({"prefix": "/audit/"}, "start with '/'"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_records": 0}, "max_records"),
        ({"max_age_s": 0}, "max_age_s"),
        ({"kms_key_id": "alias/audit"}, "kms_key_id"),
        ({"sse": "aws:kms", "kms_key_id": ""}, "kms_key_id"),
        ({"compress_level": 0}, "compress_level"),
        ({"put_attempts": 0}, "put_attempts"),
        ({"retry_base_s": 2.0, "retry_cap_s": 1.0}, "retry"),
        ({"flush_concurrency": 0}, "flush_concurrency"),
    ],
)
def test_settings_reject_invalid_values(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AuditSettings(**{"bucket": "audit-bucket", **changes})


def test_settings_defaults() -> None:
    settings = AuditSettings(bucket="audit-bucket")
    assert settings.prefix == "audit/"
    assert settings.max_bytes == 8 * 1024 * 1024
    assert settings.max_age_s == 60.0
    assert settings.sse == "AES256"
    assert AuditSettings(bucket="b.c-d", prefix="", sse="none").prefix == ""
