"""An OpenSearch index as verify sees it: `_mget` by document id (real-time, like GET), and the
live documents' keys by `search_after` sorted on `_id` (no scroll or point-in-time context to
keep open or clean up; a document written during the pass may be missed, found next run).

Documents are read with exact numbers: the client's JSON deserializer is replaced by one that
reads non-integers as Decimal (the stock one reads floats, and 38-digit numbers would look
stale)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import (
    AuthenticationException,
    AuthorizationException,
    NotFoundError,
    TransportError,
)
from opensearchpy.serializer import Deserializer, JSONSerializer

from consumer.pipeline.search.client import build_client
from consumer.pipeline.search.document import KEYS_FIELD
from consumer.pipeline.search.queries import live_only
from consumer.pipeline.search.settings import OpenSearchSettings
from consumer.verify.keys import KeyRef
from consumer.verify.model import VerifyError
from consumer.verify.sides import IndexSide

PAGE = 1000
MGET_IDS = 500


class ExactJSONSerializer(JSONSerializer):
    def loads(self, s: str) -> Any:
        return json.loads(s, parse_float=Decimal)


class OpenSearchSide(IndexSide):
    def __init__(
        self,
        settings: OpenSearchSettings,
        key_names: tuple[str, ...],
        key_types: Mapping[str, str],
    ) -> None:
        super().__init__(key_names, key_types)
        self._settings = settings
        self.index = settings.index
        self._client: AsyncOpenSearch | None = None

    def _ready(self) -> AsyncOpenSearch:
        if self._client is None:
            client = build_client(self._settings)
            client.transport.deserializer = Deserializer(
                {"application/json": ExactJSONSerializer()}
            )
            self._client = client
        return self._client

    def _refused(self, error: TransportError, what: str) -> VerifyError:
        status = f"{error.status_code} {error.error}" if error.error else str(error.status_code)
        if isinstance(error, AuthenticationException | AuthorizationException):
            return VerifyError(
                f"OpenSearch refused {what} on index {self.index!r} ({status}): the task "
                "role (or user) needs read access to the index (es:ESHttpHead, es:ESHttpGet, "
                "es:ESHttpPost; or a role with indices:data/read/*)"
            )
        if isinstance(error, NotFoundError):
            return VerifyError(
                f"search index {self.index!r} does not exist at {self._settings.endpoint} "
                "(pipelines.search.index)"
            )
        return VerifyError(f"OpenSearch {what} on index {self.index!r} failed: {status}")

    async def check(self) -> None:
        client = self._ready()
        try:
            exists = await client.indices.exists(index=self.index)
        except TransportError as error:
            raise self._refused(error, "HEAD") from None
        if not exists:
            raise VerifyError(
                f"search index {self.index!r} does not exist at {self._settings.endpoint} "
                "(pipelines.search.index): has the search pipeline run yet?"
            )

    async def fetch(self, refs: Sequence[KeyRef]) -> dict[str, Any]:
        client = self._ready()
        ids = list({ref.doc_id for ref in refs})
        found: dict[str, Any] = {}
        for start in range(0, len(ids), MGET_IDS):
            try:
                answer = await client.mget(
                    index=self.index, body={"ids": ids[start : start + MGET_IDS]}
                )
            except TransportError as error:
                raise self._refused(error, "_mget") from None
            for doc in answer.get("docs", []):
                source = doc.get("_source")
                if doc.get("found") and isinstance(source, dict) and not source.get("deleted"):
                    found[doc["_id"]] = source
        return found

    async def live_keys(self) -> AsyncIterator[list[KeyRef]]:
        client = self._ready()
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "query": live_only(),
                "size": PAGE,
                "sort": [{"_id": "asc"}],
                "_source": [KEYS_FIELD],
            }
            if after is not None:
                body["search_after"] = after
            try:
                answer = await client.search(index=self.index, body=body)
            except TransportError as error:
                raise self._refused(error, "_search") from None
            hits = answer.get("hits", {}).get("hits", [])
            if not hits:
                return
            yield self._refs((hit.get("_source") or {}).get(KEYS_FIELD) or {} for hit in hits)
            after = hits[-1].get("sort")
            if not after:
                return

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
