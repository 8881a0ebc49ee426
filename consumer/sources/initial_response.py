"""Tolerate a SubscribeToShard stream that lacks the `initial-response` event.

AWS starts every SubscribeToShard event stream with an `initial-response` event; botocore's
parser insists on it and fails with "First event was not of type initial-response" otherwise.
kinesis-mock (the local emulator) omits it. This module is the one place that copes:

- It is opt-in per client (`tolerate_missing_initial_response(client)` registers a handler on
  that client's own event emitter), never a global patch of botocore or aiobotocore.
- It changes nothing when the first message *is* `initial-response` (real AWS): the bytes pass
  through untouched. Only when the first message is something else does it put a synthetic,
  empty `initial-response` in front, so the real first event is kept, not swallowed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from consumer.sources.event_frames import encode_event, event_type_of, message_length

_SYNTHETIC_INITIAL_RESPONSE = encode_event("initial-response", b"{}")
_EVENT_NAME = "before-parse.kinesis.SubscribeToShard"


class _Content:
    def __init__(self, shim: _InitialResponseShim) -> None:
        self._shim = shim

    def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        return self._shim.iter_chunks()


class _InitialResponseShim:
    """Wraps aiohttp's response so `content.iter_chunks()` always starts with initial-response."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.content = _Content(self)
        self.injected = False

    async def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        chunks = self._raw.content.iter_chunks()
        head = b""
        async for chunk, end_of_http_chunk in chunks:
            head += chunk
            length = message_length(head)
            if length is not None and len(head) >= length:
                if event_type_of(head[:length]) != "initial-response":
                    self.injected = True
                    yield _SYNTHETIC_INITIAL_RESPONSE, False
                yield head, end_of_http_chunk
                break
        else:
            if head:
                yield head, False
            return
        async for chunk, end_of_http_chunk in chunks:
            yield chunk, end_of_http_chunk

    def close(self) -> None:
        self._raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _wrap_event_stream_body(response_dict: dict[str, Any], **_: Any) -> None:
    if response_dict.get("status_code") == 200 and not isinstance(
        response_dict.get("body"), _InitialResponseShim | bytes
    ):
        response_dict["body"] = _InitialResponseShim(response_dict["body"])


def tolerate_missing_initial_response(kinesis_client: Any) -> None:
    """Make this one aiobotocore Kinesis client accept streams without initial-response."""
    kinesis_client.meta.events.register(_EVENT_NAME, _wrap_event_stream_body)
