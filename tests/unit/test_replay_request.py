"""A replay request: which pipelines (clear errors for unknown and unconfigured ones), its own
name and lease table, and the settings it runs with."""

from __future__ import annotations

from typing import Any

import pytest

from consumer.replay.request import (
    ReplayRequest,
    Source,
    check_workers,
    replay_name,
    replay_settings,
    select_pipelines,
)
from consumer.replay.window import ReplayInputError, ReplayWindow
from consumer.settings import Settings


def settings(**pipelines: Any) -> Settings:
    values: dict[str, Any] = {
        "application": "orders-cdc",
        "stream": {"name": "orders", "mode": "efo"},
        "leases": {"table": "orders-cdc-live-leases", "worker_id": "task-1"},
        "dlq": {"queue_url": "https://sqs/q"},
        "pipelines": pipelines,
    }
    return Settings(**values)


REPLICA = {"enabled": True, "table": "replica", "retry": {"max_record_age_s": 3600}}
AUDIT = {"enabled": True, "bucket": "audit-bucket"}


def test_by_default_every_enabled_pipeline_but_audit() -> None:
    chosen = select_pipelines(settings(replication=REPLICA, audit=AUDIT), None, Source.STREAM)
    assert chosen == ("replication",)


def test_nothing_to_replay_into_is_an_error() -> None:
    with pytest.raises(ReplayInputError, match="no pipeline to replay into"):
        select_pipelines(settings(audit=AUDIT), None, Source.STREAM)


def test_an_unknown_pipeline_lists_the_valid_ones() -> None:
    with pytest.raises(
        ReplayInputError,
        match="unknown pipeline 'serch' in --pipelines; valid: audit, search, replication",
    ):
        select_pipelines(settings(replication=REPLICA), ["replication", "serch"], Source.STREAM)


def test_a_pipeline_the_settings_do_not_configure_is_an_error() -> None:
    with pytest.raises(
        ReplayInputError,
        match=r"pipeline search is not configured: .*CONSUMER_PIPELINES__SEARCH__ENABLED=true",
    ):
        select_pipelines(settings(replication=REPLICA), ["search"], Source.STREAM)


def test_audit_from_the_archive_is_refused() -> None:
    with pytest.raises(ReplayInputError, match="copy the archive onto itself"):
        select_pipelines(settings(audit=AUDIT), ["audit"], Source.ARCHIVE)
    assert select_pipelines(settings(audit=AUDIT), ["audit"], Source.STREAM) == ("audit",)


def test_names_are_per_replay_and_never_the_live_one() -> None:
    live = settings(replication=REPLICA)
    assert replay_name(live, 1_795_813_200_000, None) == "orders-cdc-replay-20261127T210000Z"
    assert replay_name(live, None, None) == "orders-cdc-replay-trim-horizon"
    assert replay_name(live, None, "rebuild-1") == "rebuild-1"
    with pytest.raises(ReplayInputError, match="live application's name"):
        replay_name(live, None, "orders-cdc")
    with pytest.raises(ReplayInputError, match="--replay-name 'a b'"):
        replay_name(live, None, "a b")


def test_workers() -> None:
    assert check_workers(3, Source.STREAM) == []
    assert "ignored with --source archive" in check_workers(2, Source.ARCHIVE)[0]
    with pytest.raises(ReplayInputError, match="at least 1"):
        check_workers(0, Source.STREAM)


def test_replay_settings_isolate_the_replay_from_the_live_service() -> None:
    live = settings(replication=REPLICA, audit=AUDIT)
    request = ReplayRequest(ReplayWindow(None, 10), ("replication",), Source.STREAM, "r-1")
    replay = replay_settings(live, request)
    assert replay.application == "r-1"
    assert replay.lease_table == "r-1-leases" == request.lease_table
    assert replay.leases.worker_id is None  # one id per process, never the live task's
    assert replay.stream.mode == "polling"
    assert replay.enabled_pipelines() == ["replication"]
    assert replay.pipelines.replication.retry.max_record_age_s == -1  # old records are the point
    assert live.pipelines.audit.enabled and live.lease_table == "orders-cdc-live-leases"
