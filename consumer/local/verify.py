"""LOCAL ONLY: checking what the pipelines produced against the source table (demo, chaos)."""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from consumer.aws import AwsEndpoints
from consumer.pipeline.replication import create_replica_table, live_items
from consumer.pipeline.search import LocalIndexSettings, LocalIndexStore
from consumer.records import item_to_json, to_json_bytes


@dataclass
class Mismatches:
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)


def create_replica(endpoints: AwsEndpoints, table: str, key: str = "pk") -> None:
    async def create() -> None:
        async with endpoints.aio_client("dynamodb") as client:
            await create_replica_table(
                client,
                table,
                [{"AttributeName": key, "KeyType": "HASH"}],
                [{"AttributeName": key, "AttributeType": "S"}],
            )

    asyncio.run(create())


def source_items(endpoints: AwsEndpoints, table: str) -> list[dict[str, Any]]:
    client = endpoints.client("dynamodb")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def replica_items(endpoints: AwsEndpoints, table: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        async with endpoints.aio_client("dynamodb") as client:
            return await live_items(client, table)

    return asyncio.run(read())


def audit_event_ids(endpoints: AwsEndpoints, bucket: str) -> set[str]:
    """Distinct event ids over every audit object in the bucket."""
    s3 = endpoints.client("s3")
    ids: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            for line in gzip.decompress(body).splitlines():
                if line.strip():
                    ids.add(orjson.loads(line)["event_id"])
    return ids


def normalized(item: dict[str, Any]) -> Any:
    """An item (typed JSON with bytes or base64 binaries) as comparable plain JSON."""
    return orjson.loads(to_json_bytes(item_to_json(_base64_binaries(item))))


def _base64_binaries(value: Any) -> Any:
    import base64

    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: _base64_binaries(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_base64_binaries(inner) for inner in value]
    return value


def compare_items(
    label: str,
    source: list[dict[str, Any]],
    other: list[dict[str, Any]],
    key: str,
    mismatches: Mismatches,
    plain: bool = False,
) -> None:
    """Source items (typed JSON) against another copy (typed JSON, or plain JSON documents
    when `plain`), by key: missing, extra and different items are each one line."""
    expected = {normalized(item)[key]: normalized(item) for item in source}
    actual = {
        (doc[key] if plain else normalized(doc)[key]): (doc if plain else normalized(doc))
        for doc in other
    }
    for missing in sorted(set(expected) - set(actual)):
        mismatches.add(f"{label}: item {missing} is missing")
    for extra in sorted(set(actual) - set(expected)):
        mismatches.add(f"{label}: item {extra} should not be there")
    for item_key in sorted(set(expected) & set(actual)):
        if expected[item_key] != actual[item_key]:
            mismatches.add(f"{label}: item {item_key} differs")


def search_documents(search_dir: Path, index: str = "changes") -> list[dict[str, Any]]:
    """The live documents' items in the local search index, as plain JSON."""
    path = LocalIndexSettings(index=index, directory=search_dir).file
    if not path.exists():
        return []
    store = LocalIndexStore.open(path, readonly=True)
    try:
        return [orjson.loads(doc.source)["item"] for doc in store.documents()]
    finally:
        store.close()
