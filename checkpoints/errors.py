"""Errors the lease layer raises to its callers (shard processors, the CLI)."""

from __future__ import annotations


class LeaseError(Exception):
    """Base class of every error raised by `checkpoints`."""


class LeaseLost(LeaseError):
    """This worker no longer owns the lease: it was taken, handed off, expired locally, or
    the table refused a fenced write. The shard must stop; nothing more may be checkpointed."""

    def __init__(self, lease_key: str, reason: str) -> None:
        super().__init__(f"lease {lease_key} lost: {reason}")


class CheckpointRejected(LeaseError):
    """A checkpoint request that can never succeed, e.g. after SHARD_END or a malformed
    sequence number. (A checkpoint *behind* the current one is ignored, not rejected.)"""


class LeaseTableMissing(LeaseError):
    """The lease table does not exist (and this caller may not create it)."""


class LeaseTableUnavailable(LeaseError):
    """The lease table kept throttling or failing after every retry this call was allowed."""
