"""What a pipeline does with records it cannot apply: the `pipelines.<name>.retry` section."""

from __future__ import annotations

import enum

from pydantic import Field, model_validator

from consumer.setting_rules import Section


class OnFailure(enum.StrEnum):
    DLQ = "dlq"
    STOP = "stop"


class RetrySection(Section):
    """Per-pipeline failure policy (as Lambda's event source mapping).

    `max_attempts`: tries of a record whose sink raises a non-transient error (-1: forever).
    `max_record_age_s`: a record older than this (by Kinesis arrival) is parked instead of
    retried (-1: no limit). `bisect`: split failing batches to isolate the bad record.
    """

    # -1: forever; else 1 to 10,000 (Lambda's MaximumRetryAttempts bound).
    max_attempts: int = Field(3, ge=-1, le=10_000)
    # -1: no limit; else 1 s to 365 days (Kinesis' longest retention).
    max_record_age_s: float = Field(-1, ge=-1, le=365 * 86_400)
    bisect: bool = True
    on_failure: OnFailure = OnFailure.DLQ

    @model_validator(mode="after")
    def _bounds(self) -> RetrySection:
        if self.max_attempts == 0:
            raise ValueError("retry.max_attempts must be -1 (forever) or 1-10000, got 0")
        if self.max_record_age_s != -1 and self.max_record_age_s < 1:
            raise ValueError(
                "retry.max_record_age_s must be -1 (no limit) or at least 1 second, got "
                f"{self.max_record_age_s:g}"
            )
        return self


class RetryPolicy(RetrySection):
    """The section plus the backoff between tries of a failing batch (not settings: tests
    shorten it)."""

    backoff_base_s: float = 0.2
    backoff_cap_s: float = 20.0
