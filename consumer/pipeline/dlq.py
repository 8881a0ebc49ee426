"""The dead-letter queue: records a pipeline could not apply, parked in SQS with their cause.

A message carries the raw record, the error, the pipeline that failed and the record's
position, for `consumer dlq replay` and `dlq list`. A record too large for one message goes to
S3 (one deterministic key per position) and the message points to it. `park` returns only
when every record is durably in the queue, else raises: the checkpoint stays behind them.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import structlog
from botocore.exceptions import ClientError

from consumer.aws.backoff import Backoff
from consumer.aws.errors import TRANSIENT_NETWORK_ERRORS, is_retryable
from consumer.aws.fencing import fence_requests

log = structlog.get_logger(__name__)

MESSAGE_FORMAT = 1
SQS_BATCH = 10
# SQS accepts up to 256 KiB per message (and per batch) in every region; stay below it.
DEFAULT_MAX_MESSAGE_BYTES = 250 * 1024
PARK_ATTEMPTS = 8
_TEXT_FIELDS = ("pipeline", "error", "error_type", "stream", "shard_id", "sequence_number")


@dataclass(frozen=True)
class ParkedRecord:
    """One record in the dead-letter queue and why it is there."""

    pipeline: str  # the sink that failed, or "decode" when the record could not be decoded
    error: str
    error_type: str
    stream: str
    shard_id: str
    sequence_number: str
    sub_sequence_number: int
    arrival_ms: int | None
    event_id: str | None
    raw: bytes
    attempts: int = 1
    parked_at: str = ""

    def to_message(self) -> dict[str, Any]:
        message = asdict(self)
        del message["raw"]
        message["error"] = _text(self.error)
        message["format"] = MESSAGE_FORMAT
        message["parked_at"] = self.parked_at or datetime.now(UTC).isoformat()
        message["raw_b64"] = base64.b64encode(self.raw).decode()
        return message

    @classmethod
    def from_message(cls, message: dict[str, Any], raw: bytes) -> ParkedRecord:
        arrival = message.get("arrival_ms")
        event_id = message.get("event_id")
        return cls(
            **{name: str(message.get(name, "")) for name in _TEXT_FIELDS},
            sub_sequence_number=int(message.get("sub_sequence_number") or 0),
            arrival_ms=int(arrival) if arrival is not None else None,
            event_id=str(event_id) if event_id is not None else None,
            raw=raw,
            attempts=int(message.get("attempts") or 1),
            parked_at=str(message.get("parked_at", "")),
        )


@dataclass(frozen=True)
class DlqMessage:
    """A parked record as received from the queue, with what deletes it."""

    receipt_handle: str
    record: ParkedRecord
    receive_count: int


class DeadLetterQueue(Protocol):
    async def park(self, records: Sequence[ParkedRecord]) -> None:
        """Durably parks every record, or raises. The queue logs what it did with each
        (`record.parked`); one that only collects failures for its caller logs nothing."""
        ...


class DlqUnavailableError(RuntimeError):
    """The dead-letter queue did not accept the records after retries."""


class DlqRejectedError(DlqUnavailableError):
    """The dead-letter queue refused records in a way no retry can fix (too large with no
    overflow bucket, a request SQS calls invalid, no queue configured at all)."""


# Characters SQS accepts in a message body: #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
# #x10000-#x10FFFF (SendMessage, API reference). orjson escapes the control characters below
# #x20 already; the two non-characters #xFFFE and #xFFFF it writes raw, so they are escaped.
_NOT_ALLOWED = {0xFFFE: "\\ufffe", 0xFFFF: "\\uffff"}


def _json_body(message: dict[str, Any]) -> bytes:
    """A JSON message body with only the characters SQS accepts (still the same JSON)."""
    body = orjson.dumps(message).decode()
    if "\ufffe" in body or "\uffff" in body:
        body = body.translate(_NOT_ALLOWED)
    return body.encode()


def _text(value: str) -> str:
    """Error text as valid Unicode: a lone surrogate (from a bad decode) cannot be encoded."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def batches(
    bodies: Sequence[tuple[int, bytes]], max_bytes: int
) -> list[list[tuple[int, bytes]]]:
    """SendMessageBatch requests: at most 10 messages and `max_bytes` in all (SQS limits the
    whole batch's payload to the queue's maximum message size, BatchRequestTooLong)."""
    out: list[list[tuple[int, bytes]]] = []
    size = 0
    for item in bodies:
        if not out or len(out[-1]) == SQS_BATCH or size + len(item[1]) > max_bytes:
            out.append([])
            size = 0
        out[-1].append(item)
        size += len(item[1])
    return out


class SqsDeadLetterQueue:
    """SQS queue (plus an optional S3 bucket for oversized records), via aiobotocore clients."""

    def __init__(
        self,
        sqs_client: Any,
        queue_url: str,
        s3_client: Any | None = None,
        overflow_bucket: str | None = None,
        overflow_prefix: str = "dlq-overflow/",
        max_message_bytes: int | None = None,
    ) -> None:
        """`max_message_bytes`: the queue's limit; by default read from the queue's
        MaximumMessageSize attribute at the first `park` (a queue may be set below 256 KiB)."""
        self._sqs = sqs_client
        self._queue_url = queue_url
        self._s3 = s3_client
        for client in (sqs_client, s3_client):  # a park checks the parking shard's lease
            fence_requests(client)
        self._bucket = overflow_bucket
        self._prefix = overflow_prefix
        self._max_bytes = max_message_bytes

    async def _limit(self) -> int:
        if self._max_bytes is None:
            try:  # the queue's MaximumMessageSize (1 KiB-1 MiB; 256 KiB by default)
                response = await self._sqs.get_queue_attributes(
                    QueueUrl=self._queue_url, AttributeNames=["MaximumMessageSize"]
                )
            except ClientError as error:
                if is_retryable(error):
                    raise  # an outage: the pipeline waits and tries again
                raise DlqRejectedError(f"DLQ {self._queue_url} is not usable: {error}") from error
            queue_limit = int(response.get("Attributes", {}).get("MaximumMessageSize", 262_144))
            # A margin for the request's own framing; the limit counts the whole batch too.
            self._max_bytes = min(DEFAULT_MAX_MESSAGE_BYTES, queue_limit - 1024)
        return self._max_bytes

    async def _body(self, record: ParkedRecord) -> bytes:
        message = record.to_message()
        body = _json_body(message)
        if len(body) <= await self._limit():
            return body
        if self._s3 is None or self._bucket is None:
            raise DlqRejectedError(
                f"record {record.shard_id}@{record.sequence_number} is {len(body)} bytes as a "
                "DLQ message, over the queue's limit, and no overflow bucket is configured "
                "(dlq.overflow_bucket)"
            )
        key = (
            f"{self._prefix}{record.pipeline}/{record.shard_id or 'no-shard'}/"
            f"{record.sequence_number}-{record.sub_sequence_number}.json"
        )
        await self._s3.put_object(Bucket=self._bucket, Key=key, Body=record.raw)
        del message["raw_b64"]
        message["raw_s3"] = {"bucket": self._bucket, "key": key}
        message["error"] = message["error"][:4096]  # the record is in S3; keep the rest small
        return _json_body(message)

    async def park(self, records: Sequence[ParkedRecord]) -> None:
        if not records:
            return
        pending = {index: await self._body(record) for index, record in enumerate(records)}
        backoff = Backoff(base_s=0.2, cap_s=5.0)
        limit = await self._limit()
        for _ in range(PARK_ATTEMPTS):
            failed: dict[int, bytes] = {}
            for chunk in batches(list(pending.items()), limit):
                try:
                    response = await self._sqs.send_message_batch(
                        QueueUrl=self._queue_url,
                        Entries=[
                            {"Id": str(index), "MessageBody": body.decode()}
                            for index, body in chunk
                        ],
                    )
                except ClientError as error:
                    if not is_retryable(error):
                        raise DlqRejectedError(f"DLQ send failed: {error}") from error
                    failed.update(chunk)
                    continue
                except TRANSIENT_NETWORK_ERRORS as error:
                    log.warning("dlq.send_retry", error_type=type(error).__name__)
                    failed.update(chunk)
                    continue
                for entry in response.get("Failed", []):
                    if entry.get("SenderFault"):
                        raise DlqRejectedError(
                            f"DLQ refused a message: {entry.get('Code')}: {entry.get('Message')}"
                        )
                    index = int(entry["Id"])
                    failed[index] = pending[index]
            if not failed:
                for record in records:
                    log.warning(
                        "record.parked",
                        pipeline=record.pipeline,
                        shard_id=record.shard_id,
                        sequence_number=record.sequence_number,
                        error_type=record.error_type,
                    )
                return
            pending = failed
            await backoff.sleep()
        raise DlqUnavailableError(f"DLQ did not accept {len(pending)} records after retries")

    async def receive(
        self, max_messages: int = 10, visibility_timeout_s: int = 30
    ) -> list[DlqMessage]:
        """Up to `max_messages` parked records; they stay hidden for `visibility_timeout_s`."""
        response = await self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            VisibilityTimeout=visibility_timeout_s,
            AttributeNames=["ApproximateReceiveCount"],
            WaitTimeSeconds=0,
        )
        messages = []
        for message in response.get("Messages", []):
            body = orjson.loads(message["Body"])
            raw = await self._raw(body)
            count = message.get("Attributes", {}).get("ApproximateReceiveCount", 1)
            record = ParkedRecord.from_message(body, raw)
            messages.append(DlqMessage(message["ReceiptHandle"], record, int(count)))
        return messages

    async def _raw(self, body: dict[str, Any]) -> bytes:
        if "raw_b64" in body:
            return base64.b64decode(body["raw_b64"])
        pointer = body.get("raw_s3")
        if pointer and self._s3 is not None:
            response = await self._s3.get_object(Bucket=pointer["bucket"], Key=pointer["key"])
            async with response["Body"] as stream:
                data: bytes = await stream.read()
            return data
        raise DlqUnavailableError(f"DLQ message has no readable record: {sorted(body)}")

    async def delete(self, message: DlqMessage) -> None:
        await self._sqs.delete_message(
            QueueUrl=self._queue_url, ReceiptHandle=message.receipt_handle
        )

    async def release(self, message: DlqMessage) -> None:
        """Makes a received message visible again at once (it stays parked)."""
        await self._sqs.change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
        )

    async def depth(self) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        response = await self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url, AttributeNames=names
        )
        attributes = response.get("Attributes", {})
        return sum(int(attributes.get(name, 0)) for name in names)

