"""A stand-in for ExportTableToPointInTime and DescribeExport, as strict as AWS documents them.

moto (5.x) writes one data file without manifests, without an ExportTime and with a malformed
ARN, so it cannot exercise the export reader. This double writes the documented layout into the
local stack's S3 (AWS docs, "DynamoDB table export output format",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html):

    <prefix>/AWSDynamoDB/<export id>/_started
    <prefix>/AWSDynamoDB/<export id>/manifest-summary.json  (+ .checksum)
    <prefix>/AWSDynamoDB/<export id>/manifest-files.json    (+ .checksum)
    <prefix>/AWSDynamoDB/<export id>/data/<name>.json.gz    one {"Item": {...}} per line

and enforces the API's rules that matter here (API reference, ExportTableToPointInTime):
the table needs point-in-time recovery (PointInTimeRecoveryUnavailableException), ExportTime
may not be in the future, and an export stays IN_PROGRESS for a while before COMPLETED. Its
state lives in S3 beside the export, so another process (a restarted backfill) sees it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from botocore.exceptions import ClientError

from consumer.aws import AwsEndpoints
from consumer.settings import load_settings

STATE_NAME = "double-state.json"


def _error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def _export_json(value: Any) -> Any:
    """DynamoDB JSON as exports write it: binaries base64 text."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: _export_json(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_export_json(inner) for inner in value]
    return value


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class LocalExports:
    """The ExportApi of `consumer.snapshot.export_reader` over moto's DynamoDB and S3."""

    def __init__(
        self, dynamodb: Any, endpoints: AwsEndpoints, *, files: int = 3, pending_polls: int = 2
    ) -> None:
        self._dynamodb = dynamodb
        self._endpoints = endpoints
        self._files = files
        self._pending_polls = pending_polls

    @classmethod
    def factory(cls, **options: Any) -> Any:
        endpoints = load_settings(None).aws.endpoints()
        return lambda dynamodb: cls(dynamodb, endpoints, **options)

    async def start(
        self, table_arn: str, bucket: str, prefix: str, export_time: datetime
    ) -> dict[str, Any]:
        table = table_arn.rsplit("/", 1)[-1]
        backups = await self._dynamodb.describe_continuous_backups(TableName=table)
        pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        if pitr["PointInTimeRecoveryStatus"] != "ENABLED":
            raise _error(
                "PointInTimeRecoveryUnavailableException",
                f"Point in time recovery is not enabled for table '{table}'",
                "ExportTableToPointInTime",
            )
        now = datetime.now(UTC)
        if export_time > now:
            raise _error(
                "InvalidExportTimeException",
                "ExportTime is in the future",
                "ExportTableToPointInTime",
            )
        export_id = f"{int(now.timestamp() * 1000):014d}-{uuid.uuid4().hex[:8]}"
        base = f"{prefix.strip('/')}/AWSDynamoDB/{export_id}"
        items = await self._scan(table)
        async with self._endpoints.aio_client("s3") as s3:
            await s3.put_object(Bucket=bucket, Key=f"{base}/_started", Body=b"")
            entries = []
            for index in range(self._files):
                chunk = items[index :: self._files]
                lines = b"".join(
                    orjson.dumps({"Item": _export_json(item)}) + b"\n" for item in chunk
                )
                body = gzip.compress(lines)
                key = f"{base}/data/{uuid.uuid4().hex[:26]}.json.gz"
                await s3.put_object(Bucket=bucket, Key=key, Body=body)
                entries.append(
                    {
                        "itemCount": len(chunk),
                        "md5Checksum": base64.b64encode(hashlib.md5(body).digest()).decode(),
                        "etag": hashlib.md5(body).hexdigest(),
                        "dataFileS3Key": key,
                    }
                )
            files_body = b"".join(orjson.dumps(entry) + b"\n" for entry in entries)
            await s3.put_object(Bucket=bucket, Key=f"{base}/manifest-files.json", Body=files_body)
            arn = f"{table_arn}/export/{export_id}"
            summary = {
                "version": "2020-06-30",
                "exportArn": arn,
                "startTime": _iso(now),
                "endTime": _iso(datetime.now(UTC)),
                "tableArn": table_arn,
                "tableId": uuid.uuid4().hex,
                "exportTime": _iso(export_time),
                "s3Bucket": bucket,
                "s3Prefix": prefix,
                "s3SseAlgorithm": "AES256",
                "s3SseKmsKeyId": None,
                "manifestFilesS3Key": f"{base}/manifest-files.json",
                "billedSizeBytes": sum(len(orjson.dumps(i, default=str)) for i in items),
                "itemCount": len(items),
                "outputFormat": "DYNAMODB_JSON",
                "exportType": "FULL_EXPORT",
            }
            await s3.put_object(
                Bucket=bucket, Key=f"{base}/manifest-summary.json", Body=orjson.dumps(summary)
            )
            description = {
                "ExportArn": arn,
                "ExportStatus": "IN_PROGRESS",
                "TableArn": table_arn,
                "ExportTime": export_time.timestamp(),
                "StartTime": now.timestamp(),
                "S3Bucket": bucket,
                "S3Prefix": prefix,
                "ExportFormat": "DYNAMODB_JSON",
                "ExportType": "FULL_EXPORT",
                "ExportManifest": f"{base}/manifest-summary.json",
                "ItemCount": len(items),
            }
            state = {"description": description, "pending_polls": self._pending_polls}
            await s3.put_object(Bucket=bucket, Key=f"{base}/{STATE_NAME}", Body=orjson.dumps(state))
        return self._typed(description)

    async def describe(self, export_arn: str) -> dict[str, Any]:
        export_id = export_arn.rsplit("/", 1)[-1]
        async with self._endpoints.aio_client("s3") as s3:
            for bucket in (await s3.list_buckets())["Buckets"]:
                listing = await s3.list_objects_v2(Bucket=bucket["Name"])
                for entry in listing.get("Contents", []):
                    key = entry["Key"]
                    if key.endswith(f"AWSDynamoDB/{export_id}/{STATE_NAME}"):
                        answer = await s3.get_object(Bucket=bucket["Name"], Key=key)
                        state = orjson.loads(await answer["Body"].read())
                        if state["pending_polls"] > 0:
                            state["pending_polls"] -= 1
                        else:
                            state["description"]["ExportStatus"] = "COMPLETED"
                        await s3.put_object(
                            Bucket=bucket["Name"], Key=key, Body=orjson.dumps(state)
                        )
                        return self._typed(state["description"])
        raise _error("ExportNotFoundException", f"Export not found: {export_arn}", "DescribeExport")

    @staticmethod
    def _typed(description: dict[str, Any]) -> dict[str, Any]:
        """Times as botocore returns them (aware datetimes)."""
        typed = dict(description)
        for name in ("ExportTime", "StartTime"):
            typed[name] = datetime.fromtimestamp(description[name], UTC)
        return typed

    async def _scan(self, table: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = await self._dynamodb.scan(**params)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
