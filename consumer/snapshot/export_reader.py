"""Reading a DynamoDB export (ExportTableToPointInTime, DYNAMODB_JSON) from S3.

Layout (AWS docs, "DynamoDB table export output format"):

    <prefix>/AWSDynamoDB/<export id>/manifest-summary.json   one JSON object: exportArn,
        tableArn, exportTime, s3Bucket, s3Prefix, manifestFilesS3Key, itemCount, outputFormat…
    <prefix>/AWSDynamoDB/<export id>/manifest-files.json     one JSON object per line:
        itemCount, md5Checksum, etag, dataFileS3Key
    <prefix>/AWSDynamoDB/<export id>/data/<name>.json.gz     gzip; one {"Item": {…}} per line

Parts are the data files (`file-NNNN`, the S3 key kept with the lease); the resume state of a
file is the number of lines already applied. A line that is not an item goes to the caller as
a bad entry (the backfill parks it in the DLQ); a file that is missing or not gzip ends its part
with `failed` naming it, and the other files go on.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
import structlog
from botocore.exceptions import ClientError

from consumer.snapshot.segments import PartLease, SnapshotInfo, SnapshotLeases
from consumer.snapshot.table_reader import Page, TableReader, WireItem

log = structlog.get_logger(__name__)

FILE_PREFIX = "file-"
PAGE_LINES = 1000
_GZIP = 16 + zlib.MAX_WBITS


class ExportProblem(RuntimeError):
    """An export that cannot be used; the message is one line for the user."""


class ExportApi(Protocol):
    """ExportTableToPointInTime and DescribeExport (the real ones, or a stand-in in tests)."""

    async def start(
        self, table_arn: str, bucket: str, prefix: str, export_time: datetime
    ) -> dict[str, Any]: ...

    async def describe(self, export_arn: str) -> dict[str, Any]: ...


class DynamoDbExports:
    """The real API, through an aiobotocore DynamoDB client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def start(
        self, table_arn: str, bucket: str, prefix: str, export_time: datetime
    ) -> dict[str, Any]:
        answer = await self._client.export_table_to_point_in_time(
            TableArn=table_arn,
            ExportTime=export_time,
            S3Bucket=bucket,
            S3Prefix=prefix,
            ExportFormat="DYNAMODB_JSON",
        )
        description: dict[str, Any] = answer["ExportDescription"]
        return description

    async def describe(self, export_arn: str) -> dict[str, Any]:
        answer = await self._client.describe_export(ExportArn=export_arn)
        description: dict[str, Any] = answer["ExportDescription"]
        return description


def file_names(count: int) -> tuple[str, ...]:
    return tuple(f"{FILE_PREFIX}{index:04d}" for index in range(count))


def check_export(description: dict[str, Any], table_arn: str) -> None:
    """Refuses an export of another table (or region, or account), a failed one, or one in a
    format the reader does not read."""
    arn = description.get("ExportArn", "?")
    exported = description.get("TableArn")
    if exported != table_arn:
        raise ExportProblem(
            f"export {arn} is of {exported}, not of {table_arn} (another table, region or "
            "account): pass an export of this table, or leave out --export-arn"
        )
    status = description.get("ExportStatus")
    if status == "FAILED":
        raise ExportProblem(
            f"export {arn} failed ({description.get('FailureCode') or 'no code'}: "
            f"{description.get('FailureMessage') or 'no message'}): start a new one "
            "(leave out --export-arn) or use --source scan"
        )
    export_format = description.get("ExportFormat", "DYNAMODB_JSON")
    if export_format != "DYNAMODB_JSON":
        raise ExportProblem(f"export {arn} is {export_format}; backfill reads DYNAMODB_JSON")
    if description.get("ExportType", "FULL_EXPORT") != "FULL_EXPORT":
        raise ExportProblem(f"export {arn} is incremental; backfill needs a FULL_EXPORT")


def check_given_export(description: dict[str, Any], table_arn: str) -> None:
    """`--export-arn` names an export the user started: it must also be complete. One still
    running is refused rather than waited for (an export can take hours, and its time is
    fixed already: the stitching check must see it complete). An export the backfill started
    itself is waited for instead."""
    check_export(description, table_arn)
    status = description.get("ExportStatus")
    if status != "COMPLETED":
        arn = description.get("ExportArn", "?")
        raise ExportProblem(
            f"export {arn} is {status}, not COMPLETED: run again once it has completed "
            f"(aws dynamodb describe-export --export-arn {arn}), or leave out --export-arn "
            "to start one and wait for it"
        )


@dataclass(frozen=True)
class DataFile:
    key: str
    item_count: int


@dataclass(frozen=True)
class Manifest:
    export_arn: str
    table_arn: str
    export_time_us: int
    bucket: str
    files: tuple[DataFile, ...]
    item_count: int
    billed_bytes: int


def _time_us(text: str) -> int:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(parsed.timestamp() * 1_000_000)


async def _get(s3: Any, bucket: str, key: str) -> bytes:
    answer = await s3.get_object(Bucket=bucket, Key=key)
    async with answer["Body"] as body:
        data: bytes = await body.read()
    return data


def _prefixed(prefix: str, key: str) -> str:
    """Manifests name files from `AWSDynamoDB/…`; the object key starts with the prefix."""
    prefix = prefix.strip("/")
    if not prefix or key.startswith(prefix + "/"):
        return key
    return f"{prefix}/{key}"


async def load_manifest(s3: Any, description: dict[str, Any]) -> Manifest:
    """The export's manifests, read from S3. Raises ExportProblem naming what is missing."""
    bucket = description["S3Bucket"]
    prefix = description.get("S3Prefix") or ""
    summary_key = description.get("ExportManifest")
    arn = description.get("ExportArn", "?")
    if not summary_key:
        raise ExportProblem(f"export {arn} names no manifest (ExportManifest)")
    summary_key = _prefixed(prefix, summary_key)
    try:
        summary = orjson.loads(await _get(s3, bucket, summary_key))
        files_key = _prefixed(prefix, summary["manifestFilesS3Key"])
        files_text = await _get(s3, bucket, files_key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        raise ExportProblem(
            f"cannot read the manifests of export {arn} in s3://{bucket}/{summary_key} ({code})"
        ) from None
    except (orjson.JSONDecodeError, KeyError) as error:
        raise ExportProblem(
            f"manifest s3://{bucket}/{summary_key} is not a DynamoDB export manifest ({error})"
        ) from None
    files: list[DataFile] = []
    for line in files_text.splitlines():
        if not line.strip():
            continue
        entry = orjson.loads(line)
        files.append(DataFile(_prefixed(prefix, entry["dataFileS3Key"]), int(entry["itemCount"])))
    return Manifest(
        export_arn=summary.get("exportArn", arn),
        table_arn=summary.get("tableArn", description.get("TableArn", "")),
        export_time_us=_time_us(summary["exportTime"]),
        bucket=bucket,
        files=tuple(files),
        item_count=int(summary.get("itemCount", sum(f.item_count for f in files))),
        billed_bytes=int(summary.get("billedSizeBytes", 0)),
    )


def parse_line(line: bytes) -> WireItem:
    """One data-file line's item. Raises ValueError naming what is wrong (never the data)."""
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ValueError("not JSON") from None
    item = entry.get("Item") if isinstance(entry, dict) else None
    if not isinstance(item, dict) or not item:
        raise ValueError('not a {"Item": {...}} line')
    for value in item.values():
        if not isinstance(value, dict) or len(value) != 1:
            raise ValueError("an attribute is not typed DynamoDB JSON")
    return item


class ExportReader(TableReader):
    """Reads an export snapshot's data files, leased per file, for one worker."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        snapshot: SnapshotInfo,
        leases: SnapshotLeases,
        worker_id: str,
        *,
        auto_commit: bool = True,
        poll_s: float = 1.0,
        page_lines: int = PAGE_LINES,
    ) -> None:
        super().__init__(None, snapshot, leases, worker_id, auto_commit=auto_commit, poll_s=poll_s)
        self._s3 = s3
        self._bucket = bucket
        self._page_lines = page_lines

    def _page(
        self,
        lease: PartLease,
        first: int,
        items: list[WireItem],
        ordinals: list[int],
        bad: list[tuple[int, bytes, str]],
        size: int,
        size_through: int,
        last: bool,
        failed: str | None = None,
    ) -> Page:
        self.stats.pages += 1
        self.stats.items += len(items)
        self.stats.size += size
        return Page(
            part=lease.name,
            items=items,
            scan_start_us=self.snapshot.version_us,
            first_ordinal=first,
            last=last,
            size=size,
            size_through=size_through,
            resume=None if last else {"line": first + len(items) + len(bad)},
            lease=lease,
            _commit=self._commit,
            item_ordinals=ordinals,
            bad=bad,
            failed=failed,
        )

    async def _read_part(self, lease: PartLease) -> AsyncIterator[Page]:
        key = lease.part.detail or ""
        where = f"s3://{self._bucket}/{key}"
        skip = int((lease.part.position or {}).get("line", 0))
        size_through = lease.part.size
        failed: str | None = None
        try:
            compressed = await _get(self._s3, self._bucket, key)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            failed = f"data file {where} cannot be read ({code})"
            compressed = b""
        lines, problem = _gunzip_lines(compressed) if failed is None else ([], None)
        if problem is not None:
            failed = f"data file {where} is corrupt after line {len(lines)} ({problem})"
        if failed is not None:
            log.error("backfill.data_file_failed", part=lease.name, problem=failed)
        position = skip
        while True:
            chunk = lines[position : position + self._page_lines]
            items: list[WireItem] = []
            ordinals: list[int] = []
            bad: list[tuple[int, bytes, str]] = []
            for offset, line in enumerate(chunk):
                ordinal = position + offset
                try:
                    items.append(parse_line(line))
                    ordinals.append(ordinal)
                except ValueError as error:
                    bad.append((ordinal, line, f"{where} line {ordinal + 1}: {error}"))
            size = sum(len(line) for line in chunk)
            size_through += size
            last = position + len(chunk) >= len(lines)
            page = self._page(
                lease, position, items, ordinals, bad, size, size_through, last, failed
            )
            yield page
            if self._auto_commit:
                await page.commit()
            if last:
                return
            position += len(chunk)


def _gunzip_lines(data: bytes) -> tuple[list[bytes], str | None]:
    """The file's complete lines, and what went wrong if it is not (all) gzip: the lines
    before a corruption are kept."""
    decompressor = zlib.decompressobj(_GZIP)
    text = b""
    problem: str | None = None
    step = 1 << 16
    for start in range(0, len(data), step):
        try:
            text += decompressor.decompress(data[start : start + step])
        except zlib.error as error:
            problem = str(error)
            break
    if problem is None and data and not decompressor.eof:
        problem = "truncated"
    lines = text.split(b"\n")
    if problem is not None and lines:
        lines = lines[:-1]  # the last line may be cut
    return [line for line in lines if line.strip()], problem


async def begin_export_snapshot(
    leases: SnapshotLeases,
    info: SnapshotInfo,
    manifest: Manifest,
) -> SnapshotInfo:
    """Records an export's data files as the snapshot's parts (idempotent)."""
    names = file_names(len(manifest.files))
    details = {name: data_file.key for name, data_file in zip(names, manifest.files, strict=True)}
    info = await leases.set_parts(info, names)
    info = await leases.set_version(info, manifest.export_time_us)
    await leases.add_parts(info.snapshot_id, names, details)
    return info
