"""LeaseSettings: every knob of the lease coordinator in one frozen, validated object.

Defaults are for production. The timing contract they encode:

- every worker writes one heartbeat item every `heartbeat_interval_s`;
- an observer declares a worker dead when its heartbeat counter has not changed for
  `failover_s` on the observer's own monotonic clock, counted from the first time the observer
  saw that value (no clock sync between workers is needed);
- a worker stops processing (fences itself) when its last *successful* heartbeat write
  *started* more than `local_expiry_s = failover_s - fencing_margin_s` ago. Because that write
  landed before any observer could see it, every observer's failover window ends later than the
  worker's own expiry: the owner always stops before anyone may take its leases;
- observers read the table every `take_interval_s` and also exactly when a worker's failover
  deadline falls due, so a dead worker's leases are taken within
  `failover_s + take_interval_s` of its last heartbeat (plus the write latency).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from checkpoints.model import Checkpoint, Position
from checkpoints.retry import RetryPolicy


@dataclass(frozen=True)
class LeaseSettings:
    """Settings of one consumer application's leases. Constructing one does no I/O."""

    application_name: str
    # The stream whose shards are leased; needed by the coordinator, not by admin commands.
    stream_name: str | None = None
    stream_arn: str | None = None
    # Default lease table name: "<application_name>-leases" (KCL uses the bare application
    # name; the suffix keeps an adopted KCL table and ours apart).
    table_name: str | None = None
    # Where a shard without a checkpoint starts (children of a finished shard always start at
    # TRIM_HORIZON, so nothing between a parent and its child is skipped).
    initial_position: Checkpoint = field(default_factory=Checkpoint.trim_horizon)
    heartbeat_interval_s: float = 2.5
    failover_s: float = 10.0
    fencing_margin_s: float = 3.0
    take_interval_s: float = 5.0
    max_steals_per_interval: int = 2
    handoff_timeout_s: float = 30.0
    # Graceful stop (SIGTERM): how long shard processors get to finish and checkpoint.
    # ECS sends SIGKILL 30 s after SIGTERM by default, so this stays well below that.
    shutdown_timeout_s: float = 20.0
    shard_sync_interval_s: float = 60.0
    worker_id: str | None = None
    create_table: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if not self.application_name:
            raise ValueError("application_name must not be empty")
        positive = {
            "heartbeat_interval_s": self.heartbeat_interval_s,
            "failover_s": self.failover_s,
            "fencing_margin_s": self.fencing_margin_s,
            "take_interval_s": self.take_interval_s,
            "handoff_timeout_s": self.handoff_timeout_s,
            "shutdown_timeout_s": self.shutdown_timeout_s,
            "shard_sync_interval_s": self.shard_sync_interval_s,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.max_steals_per_interval < 0:
            raise ValueError("max_steals_per_interval must be >= 0")
        # At least two heartbeat attempts must fit in the local expiry, or one slow write
        # would drop every lease (lease churn).
        if self.local_expiry_s < 2 * self.heartbeat_interval_s:
            raise ValueError(
                f"local expiry ({self.local_expiry_s:g} s = failover_s - fencing_margin_s) "
                f"must be at least 2 x heartbeat_interval_s ({self.heartbeat_interval_s:g} s)"
            )
        if self.initial_position.position not in (
            Position.TRIM_HORIZON,
            Position.LATEST,
            Position.AT_TIMESTAMP,
        ):
            raise ValueError("initial_position must be TRIM_HORIZON, LATEST or AT_TIMESTAMP")

    @property
    def lease_table(self) -> str:
        return self.table_name or default_table_name(self.application_name)

    @property
    def local_expiry_s(self) -> float:
        """How long after the start of its last successful heartbeat a worker keeps working."""
        return self.failover_s - self.fencing_margin_s


def default_table_name(application_name: str) -> str:
    return f"{application_name}-leases"
