"""LeaseSettings validation (the `leases` section's checks, written once) and worker identity."""

from __future__ import annotations

import json

import pytest

from checkpoints.identity import ECS_METADATA_ENV, host_pid_id, worker_id_from_environment
from checkpoints.model import Checkpoint
from checkpoints.settings import LeaseSettings


def test_defaults_meet_the_kcl_comparison() -> None:
    settings = LeaseSettings(application_name="orders")
    assert settings.lease_table == "orders-leases"
    assert settings.failover_s == 10.0  # KCL's default failover time
    assert settings.local_expiry_s < settings.failover_s
    assert settings.local_expiry_s >= 2 * settings.heartbeat_interval_s
    assert settings.initial_position == Checkpoint.trim_horizon()
    assert settings.fencing_margin_s == 3.0  # min(3 s, failover / 3)
    assert LeaseSettings(application_name="a", table="t").lease_table == "t"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"application_name": ""}, "application_name"),
        ({"heartbeat_interval_s": 0}, "heartbeat_interval_s"),
        ({"failover_s": 4.0, "heartbeat_interval_s": 2.0}, "failover_s .* is too short"),
        ({"failover_s": 1.0}, "failover_s .* is too short"),
        ({"fencing_margin_s": 1.0}, "fencing_margin_s"),  # derived from failover_s, not set
        ({"max_steals_per_interval": -1}, "max_steals"),
        ({"initial_position": Checkpoint.shard_end()}, "initial_position"),
    ],
)
def test_invalid_settings_are_refused(overrides: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"application_name": "app", **overrides}
    with pytest.raises(ValueError, match=message):
        LeaseSettings(**arguments)


def test_worker_id_is_the_ecs_task_arn_when_on_ecs() -> None:
    arn = "arn:aws:ecs:us-east-1:123456789012:task/cluster/0123456789abcdef"
    urls: list[str] = []

    def http_get(url: str, timeout_s: float) -> bytes:
        urls.append(url)
        return json.dumps({"TaskARN": arn, "Family": "consumer"}).encode()

    env = {ECS_METADATA_ENV: "http://169.254.170.2/v4/abc"}
    assert worker_id_from_environment(env, http_get) == arn
    assert urls == ["http://169.254.170.2/v4/abc/task"]


def test_worker_id_falls_back_to_host_and_pid() -> None:
    def unreachable(url: str, timeout_s: float) -> bytes:
        raise OSError("no route")

    assert worker_id_from_environment({ECS_METADATA_ENV: "http://x"}, unreachable) == host_pid_id()
    assert worker_id_from_environment({}) == host_pid_id()
    assert host_pid_id("host", 42) == "host:42"
