"""`consumer verify` on the local stack: the replica and the local search index corrupted in
every way (an item missing, a stale copy, a tombstone where the item lives, a live item where it
was deleted, an item the table never had); verify finds each with its kind, `--repair` fixes
them through the versioned sinks, and a second verify exits 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.local.stack import LocalStackState
from tests.verify.world import (
    ITEMS,
    corrupt_index,
    corrupt_replica,
    key,
    search_env,
    synced_deployment,
    verify,
)

pytestmark = pytest.mark.integration


def test_verify_finds_every_kind_repair_fixes_them_and_a_second_verify_exits_0(
    local_stack: LocalStackState, unique_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    search_dir = tmp_path / "search"
    deployment = synced_deployment(local_stack, unique_name, search_dir)
    env = search_env(search_dir)
    live = ITEMS - 2

    code, report, err = verify(deployment, monkeypatch, env)
    assert code == 0, (report, err)
    for name in ("replication", "search"):
        counts = report["pipelines"][name]
        assert (counts["equal"], counts["missing"], counts["stale"], counts["extra"]) == (
            live,
            0,
            0,
            0,
        ), counts

    corrupt_replica(deployment)
    corrupt_index(search_dir)
    code, report, err = verify(deployment, monkeypatch, env)
    assert code == 1, (report, err)
    for name in ("replication", "search"):
        found = report["pipelines"][name]
        assert found["equal"] == live - 3, (name, found)
        assert found["first"] == {
            "missing": [f"pk={key(1)}", f"pk={key(3)}"],
            "stale": [f"pk={key(2)}"],
            "extra": [f"pk={key(30)}", f"pk={key(999)}"],
        }, (name, found)
        assert (found["missing"], found["stale"], found["extra"]) == (2, 1, 2)
    # Keys only: no item contents anywhere in the report.
    assert "OLD" not in str(report) and "padding" not in str(report)

    code, report, err = verify(deployment, monkeypatch, env, "--repair")
    assert code == 0, (report, err)
    assert report["after_repair"] == {"replication": 0, "search": 0}
    assert all(report["pipelines"][n]["repaired"] == 5 for n in ("replication", "search"))

    code, report, err = verify(deployment, monkeypatch, env)
    assert code == 0, (report, err)
    assert all(report["pipelines"][n]["equal"] == live for n in ("replication", "search")), report
    # The repair left tombstones where the extras were: a late, older change of them cannot
    # bring them back.
    replica = deployment.endpoints.client("dynamodb").get_item(
        TableName=deployment.replica, Key={"pk": {"S": key(999)}}, ConsistentRead=True
    )["Item"]
    assert replica["_cdc_deleted"] == {"BOOL": True}
