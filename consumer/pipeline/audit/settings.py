"""AuditSettings: every knob of the audit sink in one frozen, validated object."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

MIB = 1024 * 1024
# S3 takes at most 5 GiB in one PutObject; a gzip body is never much larger than its input,
# so an uncompressed limit of 4 GiB always fits.
MAX_OBJECT_BYTES = 4 * 1024 * MIB
# Bucket names: 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a
# letter or digit (the S3 general purpose bucket rules this sink relies on).
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ServerSideEncryption(StrEnum):
    """The PutObject `ServerSideEncryption` value: SSE-S3 or SSE-KMS."""

    S3 = "AES256"
    KMS = "aws:kms"


@dataclass(frozen=True)
class AuditSettings:
    """Where audit objects go and when buffers are written. Constructing one does no I/O.

    - `bucket`, `prefix`: objects are written under `s3://bucket/prefix` (prefix "" or ending
      in "/"; see `layout` for the rest of the key).
    - A shard buffer is due for a flush when its uncompressed NDJSON reaches `max_bytes`, when
      it holds `max_records` records, or when its oldest record has waited `max_age_s`. The same
      byte and record limits also cap each object: a buffer that outgrows them is written as
      several objects.
    - `sse`: server-side encryption requested on every PutObject; None sends no header (the
      bucket's default encryption applies). `kms_key_id` (only with SSE-KMS) names the key;
      without it S3 uses the account's `aws/s3` key.
    - `compress_level`: gzip level (1 fastest, 9 smallest).
    - `verify_json`: parse every raw payload once more before embedding it. That is about as
      costly as building the rest of the line; turn it off only when every event comes from
      this project's decoders (which have parsed the payload already).
    - `put_attempts`, `retry_base_s`, `retry_cap_s`: a throttled or failed (5xx, network)
      PutObject is retried inside one `flush`, with full-jitter backoff, up to `put_attempts`
      tries in all. `flush_concurrency`: shard buffers written at the same time.
    """

    bucket: str
    prefix: str = "audit/"
    max_bytes: int = 8 * MIB
    max_records: int = 100_000
    max_age_s: float = 60.0
    sse: ServerSideEncryption | None = ServerSideEncryption.S3
    kms_key_id: str | None = None
    compress_level: int = 6
    verify_json: bool = True
    put_attempts: int = 4
    retry_base_s: float = 0.2
    retry_cap_s: float = 5.0
    flush_concurrency: int = 8
    # The bucket's owning account: S3 refuses the write (403) if another account owns the
    # bucket, e.g. one re-created under the same name after this one was deleted.
    expected_bucket_owner: str | None = None

    def __post_init__(self) -> None:
        if not _BUCKET_NAME.match(self.bucket) or ".." in self.bucket:
            raise ValueError(f"bucket {self.bucket!r} is not a valid S3 bucket name")
        if self.prefix.startswith("/"):
            raise ValueError(f"prefix {self.prefix!r} must not start with '/'")
        if self.prefix and not self.prefix.endswith("/"):
            raise ValueError(f"prefix {self.prefix!r} must be empty or end with '/'")
        if not 1 <= self.max_bytes <= MAX_OBJECT_BYTES:
            raise ValueError(f"max_bytes must be in 1..{MAX_OBJECT_BYTES}, got {self.max_bytes}")
        if self.max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {self.max_records}")
        if not self.max_age_s > 0:
            raise ValueError(f"max_age_s must be > 0, got {self.max_age_s}")
        if self.sse is not None and not isinstance(self.sse, ServerSideEncryption):
            raise ValueError(f"sse must be a ServerSideEncryption or None, got {self.sse!r}")
        if self.kms_key_id is not None:
            if self.sse is not ServerSideEncryption.KMS:
                raise ValueError("kms_key_id needs sse=ServerSideEncryption.KMS")
            if not self.kms_key_id:
                raise ValueError("kms_key_id must not be empty (leave it None for aws/s3)")
        if not 1 <= self.compress_level <= 9:
            raise ValueError(f"compress_level must be in 1..9, got {self.compress_level}")
        if self.put_attempts < 1:
            raise ValueError(f"put_attempts must be >= 1, got {self.put_attempts}")
        if self.retry_base_s < 0 or self.retry_cap_s < self.retry_base_s:
            raise ValueError("retry delays need 0 <= retry_base_s <= retry_cap_s")
        if self.flush_concurrency < 1:
            raise ValueError(f"flush_concurrency must be >= 1, got {self.flush_concurrency}")
