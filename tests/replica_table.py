"""Reading a replica table the replication sink wrote, for tests."""

from __future__ import annotations

from typing import Any

from consumer.pipeline.replication import DELETED, RESERVED


async def live_items(client: Any, table: str) -> list[dict[str, Any]]:
    """Every replica item that is not a tombstone, without the version attributes."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = await client.scan(**kwargs)
        for item in page.get("Items", []):
            if item.get(DELETED, {}).get("BOOL"):
                continue
            items.append({k: v for k, v in item.items() if k not in RESERVED})
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
