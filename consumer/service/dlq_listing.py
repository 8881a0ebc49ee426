"""`consumer dlq list`: read parked records without building any pipeline.

Listing opens only the queue (and the overflow bucket, where oversized records live), so it
never imports the replication transform hook or opens a sink: a broken hook or an unreachable
destination does not keep an operator from seeing what is parked.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from consumer.pipeline.dlq import DlqMessage, SqsDeadLetterQueue
from consumer.settings import Settings


async def list_parked(settings: Settings, limit: int) -> list[DlqMessage]:
    """Up to `limit` parked records, without removing them (they stay hidden briefly while
    being read, then are made visible again)."""
    if not settings.dlq.queue_url:
        raise ValueError("no dead-letter queue is configured (dlq.queue_url)")
    endpoints = settings.aws.endpoints()
    async with AsyncExitStack() as stack:
        sqs = await stack.enter_async_context(endpoints.aio_client("sqs"))
        s3 = (
            await stack.enter_async_context(endpoints.aio_client("s3"))
            if settings.dlq.overflow_bucket
            else None
        )
        dlq = SqsDeadLetterQueue(
            sqs,
            settings.dlq.queue_url,
            s3_client=s3,
            overflow_bucket=settings.dlq.overflow_bucket,
            overflow_prefix=settings.dlq.overflow_prefix,
        )
        seen: list[DlqMessage] = []
        try:
            while len(seen) < limit:
                batch = await dlq.receive(min(10, limit - len(seen)), visibility_timeout_s=30)
                if not batch:
                    break
                seen.extend(batch)
        finally:
            for message in seen:
                await dlq.release(message)
        return seen
