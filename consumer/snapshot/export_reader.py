"""Reading a DynamoDB export (ExportTableToPointInTime, DYNAMODB_JSON) from S3.

Layout (AWS docs, "DynamoDB table export output format"):

    <prefix>/AWSDynamoDB/<export id>/manifest-summary.json   one JSON object: exportArn,
        tableArn, exportTime, s3Bucket, s3Prefix, manifestFilesS3Key, itemCount, outputFormat…
    <prefix>/AWSDynamoDB/<export id>/manifest-files.json     one JSON object per line:
        itemCount, md5Checksum, etag, dataFileS3Key
    <prefix>/AWSDynamoDB/<export id>/data/<name>.json.gz     gzip; one {"Item": {…}} per line

Parts are the data files (`file-NNNN`); a file's resume state is the number of lines applied.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

import orjson
import structlog
from botocore.exceptions import ClientError

from consumer.aws.backoff import Backoff
from consumer.aws.errors import TRANSIENT_NETWORK_ERRORS
from consumer.snapshot.segments import PartLease, SnapshotInfo, SnapshotLeases
from consumer.snapshot.table_reader import Page, TableReader, WireItem

log = structlog.get_logger(__name__)

FILE_PREFIX = "file-"
PAGE_LINES = 1000
_GZIP = 16 + zlib.MAX_WBITS
# Bytes read from S3, and bytes inflated, per step: memory stays bounded by a page of lines.
_CHUNK_BYTES = 1 << 16
# A data file whose connection keeps failing is reported as unreadable after this many tries.
_READ_ATTEMPTS = 5


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
        return cast(dict[str, Any], answer["ExportDescription"])

    async def describe(self, export_arn: str) -> dict[str, Any]:
        answer = await self._client.describe_export(ExportArn=export_arn)
        return cast(dict[str, Any], answer["ExportDescription"])


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
    """`--export-arn`'s export must also be complete: one still running is refused, not waited
    for (it can take hours, and the stitching check must see its fixed time complete)."""
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
class Manifest:
    export_arn: str
    table_arn: str
    export_time_us: int
    bucket: str
    files: tuple[str, ...]  # the data files' S3 keys
    item_count: int


async def _get(s3: Any, bucket: str, key: str) -> bytes:
    return b"".join([chunk async for chunk in _body_chunks(s3, bucket, key)])


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
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        hint = ""
        if status == 403 or "AccessDenied" in str(code):
            hint = (
                ": missing permission s3:GetObject on the export prefix; grant the backfill "
                "task role the TaskBackfillPolicy of infra/cloudformation/service.yaml"
            )
        raise ExportProblem(
            f"cannot read the manifests of export {arn} in s3://{bucket}/{summary_key} "
            f"({code}){hint}"
        ) from None
    except (orjson.JSONDecodeError, KeyError) as error:
        raise ExportProblem(
            f"manifest s3://{bucket}/{summary_key} is not a DynamoDB export manifest ({error})"
        ) from None
    entries = [orjson.loads(line) for line in files_text.splitlines() if line.strip()]
    exported = datetime.fromisoformat(summary["exportTime"].replace("Z", "+00:00"))
    return Manifest(
        export_arn=summary.get("exportArn", arn),
        table_arn=summary.get("tableArn", description.get("TableArn", "")),
        export_time_us=int(exported.timestamp() * 1_000_000),
        bucket=bucket,
        files=tuple(_prefixed(prefix, entry["dataFileS3Key"]) for entry in entries),
        item_count=int(summary.get("itemCount", sum(int(e["itemCount"]) for e in entries))),
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
    ) -> None:
        super().__init__(None, snapshot, leases, worker_id, auto_commit=auto_commit)
        self._s3 = s3
        self._bucket = bucket

    async def _read_part(self, lease: PartLease) -> AsyncIterator[Page]:
        """The file's pages, streamed: at most one page of lines and one decompressed chunk
        are held at a time, whatever the file's size. A connection lost mid-file is opened
        again and the lines already taken are skipped (gzip cannot seek)."""
        key = lease.part.detail or ""
        where = f"s3://{self._bucket}/{key}"
        first = int((lease.part.position or {}).get("line", 0))
        size_through = lease.part.size
        chunk: list[bytes] = []
        failed: str | None = None
        backoff = Backoff(base_s=0.5, cap_s=10.0)
        attempts = 0
        while True:
            taken = first + len(chunk)  # lines already in pages or in `chunk`
            seen = 0
            try:
                async for line in gzip_lines(_body_chunks(self._s3, self._bucket, key)):
                    seen += 1
                    if seen <= taken:
                        continue
                    if len(chunk) == PAGE_LINES:
                        page = self._page_of(lease, first, chunk, where, size_through, False)
                        size_through = page.size_through
                        yield page
                        if self.auto_commit:
                            await page.commit()
                        first += len(chunk)
                        chunk = []
                    chunk.append(line)
                break
            except CorruptDataFile as problem:
                failed = f"data file {where} is corrupt after line {problem.lines} ({problem})"
                break
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                failed = f"data file {where} cannot be read ({code})"
                break
            except TRANSIENT_NETWORK_ERRORS as error:
                attempts += 1
                if attempts > _READ_ATTEMPTS:
                    failed = f"data file {where} cannot be read ({type(error).__name__})"
                    break
                log.warning("backfill.data_file_retry", part=lease.name, error=str(error))
                await backoff.sleep()
        if failed is not None:
            log.error("backfill.data_file_failed", part=lease.name, problem=failed)
        yield self._page_of(lease, first, chunk, where, size_through, True, failed)

    def _page_of(
        self,
        lease: PartLease,
        first: int,
        lines: list[bytes],
        where: str,
        size_through: int,
        last: bool,
        failed: str | None = None,
    ) -> Page:
        items: list[WireItem] = []
        ordinals: list[int] = []
        bad: list[tuple[int, bytes, str]] = []
        for offset, line in enumerate(lines):
            ordinal = first + offset
            try:
                items.append(parse_line(line))
                ordinals.append(ordinal)
            except ValueError as error:
                bad.append((ordinal, line, f"{where} line {ordinal + 1}: {error}"))
        size = sum(len(line) for line in lines)
        self.stats.pages += 1
        self.stats.items += len(items)
        return Page(
            part=lease.name,
            items=items,
            scan_start_us=self.snapshot.version_us,
            first_ordinal=first,
            last=last,
            size=size,
            size_through=size_through + size,
            resume=None if last else {"line": first + len(lines)},
            lease=lease,
            _commit=self._commit,
            item_ordinals=ordinals,
            bad=bad,
            failed=failed,
        )


class CorruptDataFile(ValueError):
    """The data is not (all) gzip: `lines` complete lines came before the damage."""

    def __init__(self, problem: str, lines: int) -> None:
        super().__init__(problem)
        self.lines = lines


async def _body_chunks(s3: Any, bucket: str, key: str) -> AsyncIterator[bytes]:
    """The object's bytes in chunks of at most _CHUNK_BYTES (never the whole object)."""
    answer = await s3.get_object(Bucket=bucket, Key=key)
    async with answer["Body"] as body:
        while chunk := await body.read(_CHUNK_BYTES):
            yield chunk


async def gzip_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The non-blank lines of gzip data arriving in chunks, each decompressed in steps of at
    most _CHUNK_BYTES (a small chunk of repetitive text can inflate a thousandfold). Several
    gzip members are read one after the other, as `gunzip` does. If the data is damaged or cut
    short, the complete lines before the damage are yielded and then CorruptDataFile is raised
    (a line cut by the damage is dropped)."""
    decompressor = zlib.decompressobj(_GZIP)
    pending = b""
    lines = 0
    received = False
    async for compressed in chunks:
        received = received or bool(compressed)
        data = compressed
        while data:
            try:
                text = decompressor.decompress(data, _CHUNK_BYTES)
            except zlib.error as error:
                raise CorruptDataFile(str(error), lines) from None
            data = decompressor.unconsumed_tail
            if decompressor.eof:
                data = decompressor.unused_data + data
                if data:
                    decompressor = zlib.decompressobj(_GZIP)
            if b"\n" in text:
                *complete, pending = (pending + text).split(b"\n")
                for line in complete:
                    if line.strip():
                        lines += 1
                        yield line
            else:
                pending += text
    if received and not decompressor.eof:
        raise CorruptDataFile("truncated", lines)
    if pending.strip():
        yield pending

