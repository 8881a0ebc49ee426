"""The SubscribeToShard response stream: tolerate a missing `initial-response`, read it lean.

AWS starts every SubscribeToShard event stream with an `initial-response` event; botocore's
parser insists on it and fails with "First event was not of type initial-response" otherwise.
kinesis-mock (the local emulator) omits it. This module is the one place that copes:

- It is opt-in per client (`install_subscription_stream(client)` registers a handler on that
  client's own event emitter), never a global patch of botocore or aiobotocore.
- It changes nothing when the first message *is* `initial-response` (real AWS): those bytes
  go to botocore untouched. Only when the first message is something else does it hand botocore
  a synthetic, empty `initial-response` instead, keeping the real first event for the reader
  rather than letting botocore swallow it.

It also gives the EFO reader the raw stream (`SubscriptionStream`, under RAW_STREAM in the
response), so events are decoded with one orjson call each instead of botocore's per-record
parsing. botocore is handed exactly the first message, so its own event iterator never holds
bytes that belong to later events; iterating botocore's EventStream instead still works.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from consumer.sources.event_frames import encode_event, event_type_of, message_length

RAW_STREAM = "RawSubscriptionStream"
SYNTHETIC_INITIAL_RESPONSE = encode_event("initial-response", b"{}")
_EVENT_NAME = "before-parse.kinesis.SubscribeToShard"


class _Content:
    def __init__(self, stream: SubscriptionStream) -> None:
        self._stream = stream

    def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        return self._stream.botocore_chunks()


class SubscriptionStream:
    """Wraps aiohttp's streaming response of one SubscribeToShard call."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._chunks: AsyncIterator[tuple[bytes, bool]] = raw.content.iter_chunks()
        self._remainder = b""
        self._first_taken = False
        self.content = _Content(self)  # what botocore's AioEventStream reads

    async def _first_message(self) -> bytes:
        """Reads up to the end of the first message; keeps any bytes after it."""
        head = b""
        async for chunk, _ in self._chunks:
            head += chunk
            length = message_length(head)
            if length is not None and len(head) >= length:
                break
        self._first_taken = True
        length = message_length(head)
        if length is None or len(head) < length:
            self._remainder = head
            return b""
        if event_type_of(head[:length]) == "initial-response":
            self._remainder = head[length:]
            return head[:length]
        self._remainder = head
        return SYNTHETIC_INITIAL_RESPONSE

    async def botocore_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        first = await self._first_message()
        if first:
            yield first, True
        async for chunk in self.remaining_chunks():
            yield chunk, False

    async def remaining_chunks(self) -> AsyncIterator[bytes]:
        """Every byte after the initial-response; call once botocore has parsed the response."""
        if not self._first_taken:
            await self._first_message()
        if self._remainder:
            remainder, self._remainder = self._remainder, b""
            yield remainder
        async for chunk, _ in self._chunks:
            yield chunk

    def close(self) -> None:
        self._raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _wrap_subscription_body(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    body = response_dict.get("body")
    if response_dict.get("status_code") == 200 and not isinstance(body, SubscriptionStream | bytes):
        stream = SubscriptionStream(body)
        response_dict["body"] = stream
        customized_response_dict[RAW_STREAM] = stream


def install_subscription_stream(kinesis_client: Any) -> None:
    """Make this one aiobotocore Kinesis client tolerate a missing initial-response and expose
    the raw stream under RAW_STREAM in SubscribeToShard responses."""
    kinesis_client.meta.events.register(_EVENT_NAME, _wrap_subscription_body)
