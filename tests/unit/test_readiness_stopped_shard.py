"""A shard stopped by a record that can be neither applied nor parked makes /readyz false."""

from __future__ import annotations

from types import SimpleNamespace

from consumer.service.runtime import readiness
from consumer.service.shard_task import ShardActivity


class ValidCoordinator:
    def held_shards(self) -> frozenset[str]:
        return frozenset({"shardId-000000000001"})

    def is_valid(self) -> bool:
        return True

    def taking_paused_s(self) -> float:
        return 0.0


def test_a_stopped_shard_is_not_ready_and_says_which() -> None:
    activity = ShardActivity()
    state = SimpleNamespace(
        stopping=False,
        ready=True,
        coordinator=ValidCoordinator(),
        activity=activity,
        missing_destinations=dict,
    )
    worker = SimpleNamespace(state=state)
    assert readiness(worker).ready  # type: ignore[arg-type]
    activity.stopped["shardId-000000000001"] = "cannot park record shardId-000000000001@7"
    verdict = readiness(worker)  # type: ignore[arg-type]
    assert not verdict.ready
    assert "shardId-000000000001" in verdict.reason
    activity.forget("shardId-000000000001")  # the lease is gone (released, moved)
    assert readiness(worker).ready  # type: ignore[arg-type]
