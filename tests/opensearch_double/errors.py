"""Errors the OpenSearch double answers with, in OpenSearch's shape."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error OpenSearch answers with `status` and an error object of `type`/`reason`."""

    def __init__(self, status: int, kind: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.kind = kind
        self.reason = reason
        self.extra = extra

    def error_object(self) -> dict[str, Any]:
        cause = {"type": self.kind, "reason": self.reason, **self.extra}
        return {**cause, "root_cause": [cause]}

    def body(self) -> dict[str, Any]:
        return {"error": self.error_object(), "status": self.status}
