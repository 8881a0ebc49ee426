"""LOCAL ONLY: the local stack's resources as the demo, the chaos run and the tests use them:
a replica table, every item of a table, the audit trail's event ids. (Whether the sinks equal
the table is `consumer.verify.check`, the same code as `consumer verify`.)"""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import orjson

from consumer.aws import AwsEndpoints
from consumer.pipeline.replication import create_replica_table


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
    scan = endpoints.client("dynamodb").get_paginator("scan")
    pages = scan.paginate(TableName=table, ConsistentRead=True)
    return [item for page in pages for item in page["Items"]]


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
