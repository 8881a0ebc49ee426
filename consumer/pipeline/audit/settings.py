"""The audit sink's settings: the `pipelines.audit` section (AuditSection, which the service's
settings compose) and AuditSettings, that section plus the sink's own knobs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from consumer.setting_rules import BucketName, Section

MIB = 1024 * 1024
# S3 takes at most 5 GiB in one PutObject; a gzip body is never much larger than its input,
# so an uncompressed limit of 4 GiB always fits.
MAX_OBJECT_BYTES = 4 * 1024 * MIB


class AuditSection(Section):
    """Where audit objects go and when buffers are written (README: Settings). The byte and
    record limits that make a buffer due also cap each object. `sse` "none" sends no header
    (the bucket's default applies); without `kms_key_id` SSE-KMS uses the account's `aws/s3`
    key. `expected_bucket_owner` on every PutObject makes S3 refuse (403) a bucket of another
    account, e.g. one re-created under the same name."""

    bucket: BucketName | None = None
    prefix: str = "audit/"
    max_bytes: int = Field(8 * MIB, ge=1024)
    max_records: int = Field(100_000, ge=1)
    max_age_s: float = Field(60.0, gt=0)
    sse: Literal["AES256", "aws:kms", "none"] = "AES256"
    kms_key_id: str | None = None
    expected_bucket_owner: str | None = Field(None, pattern=r"^\d{12}$")

    @model_validator(mode="after")
    def _kms_key(self) -> AuditSection:
        if self.kms_key_id and self.sse != "aws:kms":
            raise ValueError(
                f'pipelines.audit.kms_key_id needs pipelines.audit.sse = "aws:kms" '
                f"(sse is {self.sse!r}, so the key would be ignored)"
            )
        return self


class AuditSettings(AuditSection):
    """The section plus the sink's own knobs (not settings). Constructing one does no I/O.

    - `compress_level`: gzip level (1 fastest, 9 smallest).
    - `verify_json`: parse every raw payload again before embedding it (as costly as the rest
      of the line); off only when every event comes from this project's decoders.
    - `put_attempts`, `retry_base_s`, `retry_cap_s`: tries of a throttled or failed PutObject
      within one `flush`, full-jitter backoff. `flush_concurrency`: buffers written at once.
    """

    bucket: BucketName
    compress_level: int = Field(6, ge=1, le=9)
    verify_json: bool = True
    put_attempts: int = Field(4, ge=1)
    retry_base_s: float = Field(0.2, ge=0)
    retry_cap_s: float = 5.0
    flush_concurrency: int = Field(8, ge=1)

    # Checked when the sink is built, not by `consumer config check` (as before #16).
    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value.startswith("/"):
            raise ValueError(f"prefix {value!r} must not start with '/'")
        if value and not value.endswith("/"):
            raise ValueError(f"prefix {value!r} must be empty or end with '/'")
        return value

    @model_validator(mode="after")
    def _sink_limits(self) -> AuditSettings:
        if self.max_bytes > MAX_OBJECT_BYTES:
            raise ValueError(f"max_bytes must be at most {MAX_OBJECT_BYTES}, got {self.max_bytes}")
        if self.kms_key_id == "":
            raise ValueError("kms_key_id must not be empty (leave it unset for aws/s3)")
        if self.retry_cap_s < self.retry_base_s:
            raise ValueError("retry delays need 0 <= retry_base_s <= retry_cap_s")
        return self
