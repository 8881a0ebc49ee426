"""An SQS client wrapper as strict as SQS, for what moto's SQS accepts but AWS refuses.

From the Amazon SQS API reference (SendMessageBatch, SendMessage):
- "The maximum allowed individual message size and the maximum total payload size (the sum of
  the individual lengths of all of the batched messages) are both 256 KiB" (or the queue's
  MaximumMessageSize when set lower): a larger batch is `BatchRequestTooLong`;
- "A message can include only XML, JSON, and unformatted text. The following Unicode
  characters are allowed: #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to
  #x10FFFF. Any characters not included in this list will be rejected": `InvalidMessageContents`.
moto checks neither, so a consumer that only met moto would stall a shard on its first large
or oddly-worded parked record. Every other call goes to the wrapped client unchanged.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


def _allowed(character: str) -> bool:
    code = ord(character)
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _refuse(code: str, message: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message, "Type": "Sender"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "SendMessageBatch",
    )


class StrictSqs:
    def __init__(self, client: Any) -> None:
        self._client = client
        self.batches: list[int] = []  # payload bytes of each accepted batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def send_message_batch(  # botocore's parameter names
        self, QueueUrl: str, Entries: list[dict[str, Any]]
    ) -> Any:
        attributes = await self._client.get_queue_attributes(
            QueueUrl=QueueUrl, AttributeNames=["MaximumMessageSize"]
        )
        limit = int(attributes["Attributes"].get("MaximumMessageSize", 262_144))
        total = 0
        for entry in Entries:
            body = entry["MessageBody"]
            if not all(_allowed(c) for c in body):
                raise _refuse("InvalidMessageContents", "Invalid characters found.")
            total += len(body.encode("utf-8", "surrogatepass"))
        if total > limit:
            raise _refuse(
                "AWS.SimpleQueueService.BatchRequestTooLong",
                f"Batch requests cannot be longer than {limit} bytes. You have sent {total} bytes.",
            )
        self.batches.append(total)
        return await self._client.send_message_batch(QueueUrl=QueueUrl, Entries=Entries)
