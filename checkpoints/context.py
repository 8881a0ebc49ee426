"""What the coordinator's parts (heartbeat, supervisor, action executor) share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from checkpoints.errors import LeaseTableUnavailable
from checkpoints.settings import LeaseSettings
from checkpoints.table import LeaseTable

# Errors a lease-table call may end with after its retries; loops count them and carry on.
TABLE_ERRORS = (LeaseTableUnavailable, ClientError, BotoCoreError)


@dataclass(frozen=True)
class LeaseContext:
    """The settings, the lease table, the coordinator's counters and its monotonic clock."""

    settings: LeaseSettings
    table: LeaseTable
    counters: Counter[str]
    clock: Callable[[], float]
