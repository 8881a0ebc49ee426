"""The SubscribeToShard response stream: tolerate a missing `initial-response` (README,
"Emulator gaps"), and hand the EFO reader the raw stream (`SubscriptionStream`, under
RAW_STREAM) to decode with one orjson call per event instead of botocore's per-record parse.
botocore is handed exactly the first message, so iterating its EventStream still works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from botocore.eventstream import EventStreamBuffer

from consumer.sources.event_frames import encode_event, message_length

RAW_STREAM = "RawSubscriptionStream"
SYNTHETIC_INITIAL_RESPONSE = encode_event("initial-response", b"{}")
_EVENT_NAME = "before-parse.kinesis.SubscribeToShard"


class SubscriptionStream:
    """Wraps aiohttp's streaming response of one SubscribeToShard call."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._chunks: AsyncIterator[tuple[bytes, bool]] = raw.content.iter_chunks()
        self._remainder = b""
        self._first_taken = False
        self.content = self  # botocore's AioEventStream reads `content.iter_chunks()`

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
        first = EventStreamBuffer()
        first.add_data(head[:length])
        if next(first).headers.get(":event-type") == "initial-response":
            self._remainder = head[length:]
            return head[:length]
        self._remainder = head
        return SYNTHETIC_INITIAL_RESPONSE

    async def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
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
