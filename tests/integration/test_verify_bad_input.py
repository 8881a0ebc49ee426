"""`consumer verify` given bad input answers one clear line on stderr and exits 2: an unknown or
disabled pipeline, a source table, lease table, replica or local index that does not exist,
and a replica whose key schema is not the source table's.

Permissions: moto server (as the local stack runs it) accepts every request, so an AWS refusal
cannot be produced here; OpenSearch's 403 is covered by test_verify_opensearch.py, and the
mapping of an AccessDenied error to its line by tests/unit/test_verify_units.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkpoints.table import lease_table_definition
from consumer.local.resources import create_replica
from consumer.local.stack import LocalStackState
from tests.service_harness import Deployment
from tests.verify.world import search_env, verify

pytestmark = pytest.mark.integration


def _line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_each_bad_input_is_one_line_and_exit_2(
    local_stack: LocalStackState, unique_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = Deployment(local_stack, unique_name, shards=1)
    deployment.create(replica=False)
    dynamodb = deployment.endpoints.client("dynamodb")
    env = search_env(tmp_path / "search")

    code, _, err = verify(deployment, monkeypatch, env, "--pipelines", "replication,bogus")
    assert code == 2
    assert _line(err) == (
        "consumer: verify: unknown pipeline 'bogus' (choose from replication, search)"
    )
    code, _, err = verify(
        deployment,
        monkeypatch,
        {**env, "CONSUMER_PIPELINES__SEARCH__ENABLED": "false"},
        "--pipelines",
        "search",
    )
    assert code == 2
    assert _line(err) == (
        "consumer: verify: pipeline search is not enabled in the settings "
        "(pipelines.search.enabled)"
    )

    code, _, err = verify(deployment, monkeypatch, env, "--table", "no-such-table")
    assert code == 2
    assert _line(err) == (
        "consumer: verify: table 'no-such-table' does not exist in us-east-1 (--table)"
    )

    code, _, err = verify(deployment, monkeypatch, env, "--pipelines", "replication")
    assert code == 2
    assert _line(err) == (
        f"consumer: verify: replica table '{deployment.replica}' does not exist "
        "(pipelines.replication.table, region, endpoint)"
    )

    create_replica(deployment.endpoints, deployment.replica, key="other")
    code, _, err = verify(deployment, monkeypatch, env, "--pipelines", "replication")
    assert code == 2
    assert _line(err) == (
        f"consumer: verify: replica table '{deployment.replica}' has the key "
        "(other HASH S) but the source table has (pk HASH S): it is not a replica of this "
        "table (pipelines.replication.table)"
    )

    code, _, err = verify(deployment, monkeypatch, env, "--pipelines", "search")
    assert code == 2
    assert _line(err) == (
        f"consumer: verify: search index {tmp_path / 'search' / 'changes.sqlite3'} does not "
        "exist (pipelines.search.local_path and index): has the search pipeline run yet?"
    )

    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "changes.sqlite3").write_bytes(b"")  # not an index
    code, _, err = verify(deployment, monkeypatch, env, "--pipelines", "search")
    assert code == 2
    assert _line(err) == (
        f"consumer: verify: search index {tmp_path / 'search' / 'changes.sqlite3'} cannot be "
        "read: no such table: documents"
    )
    dynamodb.delete_table(TableName=deployment.replica)
    dynamodb.get_waiter("table_not_exists").wait(TableName=deployment.replica)
    create_replica(deployment.endpoints, deployment.replica)
    code, _, err = verify(deployment, monkeypatch, env, "--pipelines", "replication")
    assert code == 2
    assert _line(err) == (
        f"consumer: verify: lease table '{unique_name}-leases' does not exist: start "
        "`consumer run` first (it creates it), or set leases.table"
    )

    dynamodb.create_table(**lease_table_definition(f"{unique_name}-leases"))
    code, report, err = verify(deployment, monkeypatch, env, "--pipelines", "replication")
    assert code == 0, err
    assert report["pipelines"]["replication"]["equal"] == 0  # an empty table, an empty replica
