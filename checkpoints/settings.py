"""The lease coordinator's settings: the `leases` section and what one coordinator run is given.

Defaults are for production. The timing contract (README's Leases section gives the defaults'
numbers): observers declare a worker dead when its heartbeat counter stood still for
`failover_s` on their own clocks from their first sighting of it; the worker stops `local_expiry_s`
after its last successful heartbeat *started*, which landed before any observer saw it, so it
always stops before anyone may take its leases. Observers also read the table right when a
failover deadline falls due, so takeover comes within `failover_s + take_interval_s`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from checkpoints.model import Checkpoint, Position
from checkpoints.retry import RetryPolicy


class LeasesSection(BaseModel):
    """The `leases` section. Constructing one does no I/O."""

    # inf and nan are never meaningful here (an infinite heartbeat never fences).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Default: "<application>-leases" (KCL uses the bare application name; the suffix keeps an
    # adopted KCL table and ours apart).
    table: str | None = None
    heartbeat_interval_s: float = Field(2.5, gt=0, le=3600)
    failover_s: float = Field(10.0, gt=0, le=3600)
    take_interval_s: float = Field(5.0, gt=0, le=3600)
    max_steals_per_interval: int = Field(2, ge=0)
    # A missing destination's wait and the cool-down after (README: Settings, Failures).
    destination_missing_release_s: float = Field(60.0, ge=1, le=3600)
    destination_missing_cool_down_s: float = Field(300.0, ge=0, le=86_400)
    # Stored in the lease table as the owner (default: host name and process id).
    worker_id: str | None = Field(None, min_length=1, max_length=256, pattern=r"^\S+$")

    @model_validator(mode="after")
    def _failover_fits_heartbeats(self) -> LeasesSection:
        # Two heartbeats must fit in the local expiry, or one slow write drops every lease.
        if self.local_expiry_s < 2 * self.heartbeat_interval_s:
            raise ValueError(
                f"leases.failover_s ({self.failover_s:g}) is too short for "
                f"leases.heartbeat_interval_s ({self.heartbeat_interval_s:g}): failover_s minus "
                "min(3, failover_s/3) must be at least 2 x heartbeat_interval_s"
            )
        return self

    @property
    def fencing_margin_s(self) -> float:
        """How long before its failover time a worker stops processing (fences itself)."""
        return min(3.0, self.failover_s / 3)

    @property
    def local_expiry_s(self) -> float:
        """How long after the start of its last successful heartbeat a worker keeps working."""
        return self.failover_s - self.fencing_margin_s


class LeaseSettings(LeasesSection):
    """The section plus what one coordinator run is given. Constructing one does no I/O."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    application_name: str = Field(min_length=1)
    # The stream whose shards are leased; needed by the coordinator, not by admin commands.
    stream_name: str | None = None
    stream_arn: str | None = None
    # Where a shard without a checkpoint starts (children of a finished shard always start at
    # TRIM_HORIZON, so nothing between a parent and its child is skipped).
    initial_position: Checkpoint = Field(default_factory=Checkpoint.trim_horizon)
    handoff_timeout_s: float = Field(30.0, gt=0)
    # Graceful stop (SIGTERM): how long shard processors get to finish and checkpoint.
    # ECS sends SIGKILL 30 s after SIGTERM by default, so this stays well below that.
    shutdown_timeout_s: float = Field(20.0, gt=0)
    shard_sync_interval_s: float = Field(60.0, gt=0)
    create_table: bool = True
    retry: RetryPolicy = Field(default_factory=RetryPolicy)

    @field_validator("initial_position")
    @classmethod
    def _initial_position(cls, value: Checkpoint) -> Checkpoint:
        if value.position not in (Position.TRIM_HORIZON, Position.LATEST, Position.AT_TIMESTAMP):
            raise ValueError("initial_position must be TRIM_HORIZON, LATEST or AT_TIMESTAMP")
        return value

    @property
    def lease_table(self) -> str:
        return self.table or default_table_name(self.application_name)


def default_table_name(application_name: str) -> str:
    return f"{application_name}-leases"
