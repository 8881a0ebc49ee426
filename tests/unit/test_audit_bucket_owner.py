"""Issue 20.5: audit writes carry ExpectedBucketOwner, so a bucket of another account (one
re-created under the same name after ours was deleted, say) is never written to.

S3 User Guide, "Verifying bucket ownership with bucket owner condition": with
`x-amz-expected-bucket-owner` set, S3 fails the request with 403 Access Denied when another
account owns the bucket. `OwnedBucket` below enforces that, as S3 does."""

from __future__ import annotations

from typing import Any

import pytest

from consumer.pipeline.audit.settings import AuditSettings
from consumer.pipeline.audit.sink import AuditSink
from consumer.pipeline.sink import SinkError
from consumer.settings import SettingsError, load_settings
from tests.unit.test_audit_support import ManualClock, MemoryStore, change_event, client_error

OURS = "123456789012"
THEIRS = "210987654321"


class OwnedBucket(MemoryStore):
    """A bucket owned by `owner` that checks ExpectedBucketOwner as S3 does."""

    def __init__(self, owner: str) -> None:
        super().__init__()
        self.owner = owner

    async def put_object(self, **kwargs: Any) -> Any:
        expected = kwargs.get("ExpectedBucketOwner")
        if expected is not None and expected != self.owner:
            self.requests.append(kwargs)
            raise client_error("AccessDenied", 403)
        return await super().put_object(**kwargs)


def sink(store: MemoryStore, owner: str | None) -> AuditSink:
    settings = AuditSettings(
        bucket="audit-bucket", expected_bucket_owner=owner, retry_base_s=0.0, retry_cap_s=0.0
    )
    return AuditSink(settings, store=store, clock=ManualClock())


async def test_a_bucket_of_another_account_is_never_written() -> None:
    theirs = OwnedBucket(THEIRS)
    audit = sink(theirs, OURS)
    await audit.write([change_event(0)])
    with pytest.raises(SinkError) as refused:
        await audit.flush()
    assert not refused.value.retryable
    assert theirs.objects == {}
    assert theirs.requests[0]["ExpectedBucketOwner"] == OURS


async def test_our_bucket_is_written_with_the_owner_condition() -> None:
    ours = OwnedBucket(OURS)
    audit = sink(ours, OURS)
    await audit.write([change_event(0)])
    await audit.flush()
    assert len(ours.objects) == 1
    assert ours.requests[0]["ExpectedBucketOwner"] == OURS


def test_the_setting_takes_an_account_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUMER_STREAM__NAME", "orders")
    monkeypatch.setenv("CONSUMER_PIPELINES__AUDIT__EXPECTED_BUCKET_OWNER", OURS)
    assert load_settings().pipelines.audit.expected_bucket_owner == OURS
    monkeypatch.setenv("CONSUMER_PIPELINES__AUDIT__EXPECTED_BUCKET_OWNER", "me")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    (line,) = refused.value.lines
    assert "pipelines.audit.expected_bucket_owner" in line
