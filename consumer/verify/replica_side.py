"""The replica table as verify sees it: BatchGetItem by key, and its live keys from a leased,
parallel Scan on the shared table reader (so several verify workers share the replica too)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from consumer.snapshot.table_reader import Page
from consumer.verify.batch_get import batch_get
from consumer.verify.compare import expected_replica, is_tombstone, same_replica
from consumer.verify.keys import KeyRef, WireItem, key_ref
from consumer.verify.model import VerifyError


def key_schema(table: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(name, HASH/RANGE, S/N/B) of a DescribeTable answer's key, hash key first."""
    types = {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]}
    keys = sorted(table["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
    return [(k["AttributeName"], k["KeyType"], types[k["AttributeName"]]) for k in keys]


def schema_text(schema: list[tuple[str, str, str]]) -> str:
    return ", ".join(f"{name} {kind} {attribute_type}" for name, kind, attribute_type in schema)


class ReplicaSide:
    pipeline = "replication"

    def __init__(
        self,
        client: Any,
        table: str,
        source_table: dict[str, Any],
        *,
        include: Iterable[str] | None,
        exclude: Iterable[str],
        transform: str | None,
    ) -> None:
        self._client = client
        self.table = table
        self._source_schema = key_schema(source_table)
        self.key_names = tuple(name for name, _, _ in self._source_schema)
        self._include = None if include is None else frozenset(include)
        self._exclude = frozenset(exclude)
        self.transform = transform
        self.pages: AsyncIterator[Page] | None = None  # the replica's scan, set before live_keys

    async def check(self) -> None:
        try:
            answer = await self._client.describe_table(TableName=self.table)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                raise VerifyError(
                    f"replica table {self.table!r} does not exist "
                    "(pipelines.replication.table, region, endpoint)"
                ) from None
            raise
        schema = key_schema(answer["Table"])
        if schema != self._source_schema:
            raise VerifyError(
                f"replica table {self.table!r} has the key ({schema_text(schema)}) but the "
                f"source table has ({schema_text(self._source_schema)}): it is not a replica "
                "of this table (pipelines.replication.table)"
            )

    async def fetch(self, refs: Sequence[KeyRef]) -> dict[str, Any]:
        items = await batch_get(self._client, self.table, refs, self.key_names)
        return {doc_id: item for doc_id, item in items.items() if not is_tombstone(item)}

    def same(self, source: WireItem, copy: Any) -> bool:
        if self.transform is not None:
            return True  # a user hook shapes the copy: only presence can be checked
        expected = expected_replica(source, self.key_names, self._include, self._exclude)
        return same_replica(expected, copy)

    async def live_keys(self) -> AsyncIterator[list[KeyRef]]:
        assert self.pages is not None, "set pages first"
        async for page in self.pages:
            yield [key_ref(item, self.key_names) for item in page.items if not is_tombstone(item)]

    async def aclose(self) -> None:
        return None
