"""A strict protocol double of the OpenSearch REST APIs the search sink uses, on loopback.

Endpoints, and nothing else (any other method and path is a 400 "no handler found", as
OpenSearch answers):

    HEAD|GET /                          cluster info
    HEAD /{index}   PUT /{index}        index exists / create (settings, mappings, aliases)
    GET /{index}/_mapping               the index's mapping (explicit and dynamic fields)
    POST|PUT /_bulk   POST|PUT /{index}/_bulk      NDJSON: index, create, delete actions
    GET|DELETE /{index}/_doc/{id}       real-time get; delete (optionally versioned)
    POST|GET /_refresh   POST|GET /{index}/_refresh
    GET|POST /{index}/_count   GET|POST /{index}/_search   GET|POST /{index}/_mget

`_search` takes `sort` (on `_id` only, the one sort `consumer verify` uses), `search_after`
(as many values as sort fields, `from` 0; OpenSearch docs, "Paginate results": search_after)
and `_source` (false, or a list of fields). `_mget` takes {"ids": [...]} or {"docs":
[{"_id": ...}]} and reads in real time like GET (OpenSearch docs, "Multi-get documents").

Strictness: unknown query parameters, action-line parameters and body fields are 400s with
OpenSearch's error types; bulk bodies must end with a newline, have one JSON object per action
line and a source line after each index/create; validation failures (no index, id over 512
bytes, `version` with internal versioning, an external version type without a valid version,
create with external versioning) fail the whole request with action_request_validation_exception;
version conflicts are per-item 409s; response items are in request order.

Mappings: every indexed document is mapped first, as OpenSearch does (see mapping.py):
dynamic mapping with its type, range, date-detection and limit failures as per-item 400s.

Faults: `fail_next_bulk(count, status)` fails whole bulk requests; `fail_document(id, status,
times)` fails that document's bulk items (400 mapper_parsing_exception, 429
es_rejected_execution_exception, 5xx unavailable_shards_exception).
`block_writes(index, times)`: the index is write-blocked (index.blocks.write, or the block
Amazon OpenSearch Service sets under storage or JVM memory pressure): each index, create or
delete item for it fails with 403 cluster_block_exception until `unblock_writes` (or after
`times` items: it lifts by itself). `deny_requests(status, times)`: whole requests are refused
with 401 or 403 security_exception, as the security plugin (fine-grained access control)
answers an unknown user or a role without the permission.

Limits: with `max_content_bytes`, larger request bodies get a 413, as Amazon OpenSearch
Service answers requests over its payload limit.

Security: optional TLS (`tls=(certfile, keyfile)`), and with `sigv4=SigV4Check(...)` every
request must carry a valid AWS SigV4 signature for those credentials (else 403).
"""

from __future__ import annotations

import hashlib
import http.server
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.opensearch_double.engine import (
    MAX_VERSION,
    ApiError,
    Engine,
    Index,
    WriteResult,
    check_index_name,
    parse_json,
)

GLOBAL_PARAMS = frozenset({"pretty", "human", "error_trace"})
BULK_PARAMS = frozenset({"refresh", "timeout", "wait_for_active_shards", "pipeline", "routing"})
ACTION_PARAMS = frozenset(
    {
        "_index",
        "_id",
        "routing",
        "version",
        "version_type",
        "if_seq_no",
        "if_primary_term",
        "pipeline",
        "require_alias",
    }
)
VERSION_TYPES = frozenset({"internal", "external", "external_gte"})
MAX_ID_BYTES = 512
_DOCUMENT_FAULTS = {
    400: ("mapper_parsing_exception", "failed to parse field [item] of type [object]"),
    429: ("es_rejected_execution_exception", "rejected execution of coordinating operation"),
    500: ("illegal_state_exception", "internal failure (injected)"),
    503: ("unavailable_shards_exception", "primary shard is not active"),
}
_REQUEST_FAULTS = {
    429: ("es_rejected_execution_exception", "rejected execution of coordinating operation"),
    500: ("illegal_state_exception", "internal failure (injected)"),
    502: ("bad_gateway", "bad gateway (injected)"),
    503: ("unavailable_shards_exception", "primary shard is not active"),
    504: ("gateway_timeout", "gateway timeout (injected)"),
}


@dataclass(frozen=True)
class SigV4Check:
    """Credentials and scope the double verifies SigV4 signatures against."""

    access_key: str
    secret_key: str
    region: str
    service: str
    token: str | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int


_SECURITY_FAULTS = {
    401: "Authentication finally failed",
    403: "no permissions for [indices:data/write/bulk] and User [name=consumer, backend_roles=[], "
    "requestedTenant=null]",
}


@dataclass
class _DocumentFault:
    status: int
    remaining: int | None  # None: every time


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, value: Any) -> Response:
    return Response(status, orjson.dumps(value, default=_fragment))


def _fragment(value: object) -> object:
    if isinstance(value, bytes):
        return orjson.Fragment(value)  # a stored _source, returned verbatim
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(type(value).__name__)


class OpenSearchDouble:
    """The double's server and state. Use as a context manager, or `start()`/`stop()`."""

    def __init__(
        self,
        *,
        gc_deletes_s: float = 60.0,
        tls: tuple[str, str] | None = None,
        sigv4: SigV4Check | None = None,
        max_content_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = Engine(gc_deletes_s, clock)
        self.max_content_bytes = max_content_bytes
        self.requests: list[RecordedRequest] = []
        self.sigv4 = sigv4
        self._tls = tls
        self._lock = threading.Lock()
        self._bulk_faults: list[int] = []
        self._document_faults: dict[str, _DocumentFault] = {}
        self._write_blocks: dict[str, _DocumentFault] = {}
        self._denials: _DocumentFault | None = None
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> OpenSearchDouble:
        double = self

        class Handler(_Handler):
            owner = double

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self._tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self._tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        # A short poll interval keeps stop() fast.
        self._thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenSearchDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        scheme = "https" if self._tls is not None else "http"
        host, port = self._server.server_address[:2]
        return f"{scheme}://{host!s}:{port}"

    # --- faults ---------------------------------------------------------------------------

    def fail_next_bulk(self, count: int = 1, status: int = 429) -> None:
        """The next `count` bulk requests fail as a whole with `status` (429 or 5xx)."""
        assert status in _REQUEST_FAULTS, status
        with self._lock:
            self._bulk_faults.extend([status] * count)

    def fail_document(self, doc_id: str, status: int = 400, times: int | None = None) -> None:
        """Bulk items for `doc_id` fail with `status` (`times` times, or always)."""
        assert status in _DOCUMENT_FAULTS, status
        with self._lock:
            self._document_faults[doc_id] = _DocumentFault(status, times)

    def block_writes(self, index: str, times: int | None = None) -> None:
        """Writes to `index` fail per item with 403 cluster_block_exception (`times` items,
        or until `unblock_writes`)."""
        with self._lock:
            self._write_blocks[index] = _DocumentFault(403, times)

    def unblock_writes(self, index: str) -> None:
        with self._lock:
            self._write_blocks.pop(index, None)

    def deny_requests(self, status: int = 403, times: int | None = None) -> None:
        """Every request is refused with `status` (401 or 403) security_exception (`times`
        requests, or until `clear_faults`)."""
        assert status in _SECURITY_FAULTS, status
        with self._lock:
            self._denials = _DocumentFault(status, times)

    def clear_faults(self) -> None:
        with self._lock:
            self._bulk_faults.clear()
            self._document_faults.clear()
            self._write_blocks.clear()
            self._denials = None

    def mapping(self, index: str) -> dict[str, Any]:
        """The index's mapping as GET /{index}/_mapping shows it."""
        with self._lock:
            return self.engine.index(index).mapping.as_json()

    # --- inspection (no HTTP) -------------------------------------------------------------

    def source(self, index: str, doc_id: str) -> bytes | None:
        """The stored _source bytes of a document (real time), None if absent."""
        with self._lock:
            found = self.engine.indices.get(index)
            doc = None if found is None else found.docs.get(doc_id)
            return None if doc is None else doc.source

    def version(self, index: str, doc_id: str) -> int | None:
        with self._lock:
            found = self.engine.indices.get(index)
            doc = None if found is None else found.docs.get(doc_id)
            return None if doc is None else doc.version

    def bulk_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/_bulk")]

    # --- request handling (called by handler threads) -------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        parts = urlsplit(target)
        path, query = parts.path, parts.query
        with self._lock:
            try:
                if self.sigv4 is not None:
                    _verify_sigv4(self.sigv4, method, target, headers, body)
                denial = self._denials
                if denial is not None and denial.remaining != 0:
                    if denial.remaining is not None:
                        denial.remaining -= 1
                    raise ApiError(
                        denial.status, "security_exception", _SECURITY_FAULTS[denial.status]
                    )
                if self.max_content_bytes is not None and len(body) > self.max_content_bytes:
                    # As Amazon OpenSearch Service answers bodies over its payload limit.
                    limit = self.max_content_bytes
                    message = f"Request size exceeded {limit} bytes"
                    response = _json(413, {"Message": message})
                    self.requests.append(
                        RecordedRequest(method, path, query, headers, body, response.status)
                    )
                    return response
                response = self._route(method, path, dict(parse_qsl(query, True)), headers, body)
            except ApiError as error:
                response = _json(error.status, error.body())
            self.requests.append(
                RecordedRequest(method, path, query, headers, body, response.status)
            )
            return response

    def _route(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        segments = [unquote(s) for s in path.split("/")[1:]] if path != "/" else []
        n = len(segments)
        if n == 0 and method in ("GET", "HEAD"):
            _check_params(path, params, frozenset())
            return self._info() if method == "GET" else Response(200)
        if n == 1 and segments[0] == "_bulk" and method in ("POST", "PUT"):
            return self._bulk(None, path, params, headers, body)
        if n == 1 and segments[0] == "_refresh" and method in ("POST", "GET"):
            _check_params(path, params, frozenset())
            for index in self.engine.indices.values():
                index.refresh()
            return _json(200, _shards())
        if n == 1 and not segments[0].startswith("_"):
            if method == "HEAD":
                _check_params(path, params, frozenset())
                return Response(200 if segments[0] in self.engine.indices else 404)
            if method == "PUT":
                return self._create_index(segments[0], path, params, body)
        if n == 2 and not segments[0].startswith("_"):
            name, action = segments
            if action == "_bulk" and method in ("POST", "PUT"):
                check_index_name(name)
                return self._bulk(name, path, params, headers, body)
            if action == "_refresh" and method in ("POST", "GET"):
                _check_params(path, params, frozenset())
                self.engine.index(name).refresh()
                return _json(200, _shards())
            if action == "_mapping" and method == "GET":
                _check_params(path, params, frozenset())
                mapping = self.engine.index(name).mapping.as_json()
                return _json(200, {name: {"mappings": mapping}})
            if action == "_count" and method in ("GET", "POST"):
                _check_params(path, params, frozenset())
                return self._count(self.engine.index(name), body)
            if action == "_search" and method in ("GET", "POST"):
                _check_params(path, params, frozenset({"size", "from"}))
                return self._search(self.engine.index(name), params, body)
            if action == "_mget" and method in ("GET", "POST"):
                _check_params(path, params, frozenset({"realtime", "_source"}))
                return self._mget(self.engine.index(name), body)
        if n == 3 and segments[1] == "_doc" and not segments[0].startswith("_"):
            name, _, doc_id = segments
            if method == "GET":
                _check_params(path, params, frozenset({"realtime", "_source"}))
                return self._get(self.engine.index(name), doc_id)
            if method == "DELETE":
                _check_params(path, params, frozenset({"version", "version_type", "refresh"}))
                return self._delete(self.engine.index(name), doc_id, params)
        raise _NoHandler(path, method)

    # --- endpoints ------------------------------------------------------------------------

    def _info(self) -> Response:
        return _json(
            200,
            {
                "name": "double-node",
                "cluster_name": "opensearch-double",
                "cluster_uuid": "double",
                "version": {
                    "distribution": "opensearch",
                    "number": "2.19.0",
                    "lucene_version": "9.12.1",
                    "minimum_wire_compatibility_version": "7.10.0",
                    "minimum_index_compatibility_version": "7.0.0",
                },
                "tagline": "The OpenSearch Project: https://opensearch.org/",
            },
        )

    def _create_index(self, name: str, path: str, params: dict[str, str], body: bytes) -> Response:
        _check_params(path, params, frozenset({"timeout", "wait_for_active_shards"}))
        spec = _json_body(body) if body else {}
        if not isinstance(spec, dict):
            raise ApiError(400, "parsing_exception", "request body must be an object")
        for key in spec:
            if key not in ("settings", "mappings", "aliases"):
                raise ApiError(400, "parsing_exception", f"unknown key [{key}] for create index")
        self.engine.create_index(name, spec)
        return _json(200, {"acknowledged": True, "shards_acknowledged": True, "index": name})

    def _bulk(
        self,
        path_index: str | None,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        _check_params(path, params, BULK_PARAMS)
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if content_type not in ("application/json", "application/x-ndjson"):
            raise ApiError(
                406,
                "content_type_exception",
                f"Content-Type header [{content_type}] is not supported",
            )
        if self._bulk_faults:
            status = self._bulk_faults.pop(0)
            kind, reason = _REQUEST_FAULTS[status]
            raise ApiError(status, kind, reason)
        actions = _parse_bulk(path_index, body)
        started = time.monotonic()
        items = [self._bulk_item(action) for action in actions]
        if params.get("refresh") in ("", "true", "wait_for"):
            for name in {item[next(iter(item))]["_index"] for item in items}:
                if name in self.engine.indices:
                    self.engine.indices[name].refresh()
        errors = any("error" in next(iter(item.values())) for item in items)
        took = int((time.monotonic() - started) * 1000)
        return _json(200, {"took": took, "errors": errors, "items": items})

    def _bulk_item(self, action: _BulkAction) -> dict[str, Any]:
        base = {"_index": action.index, "_id": action.doc_id}
        try:
            fault = self._document_faults.get(action.doc_id)
            if fault is not None and fault.remaining != 0:
                if fault.remaining is not None:
                    fault.remaining -= 1
                kind, reason = _DOCUMENT_FAULTS[fault.status]
                raise ApiError(fault.status, kind, reason)
            block = self._write_blocks.get(action.index)
            if block is not None and block.remaining != 0:
                if block.remaining is not None:
                    block.remaining -= 1
                raise ApiError(
                    403,
                    "cluster_block_exception",
                    f"index [{action.index}] blocked by: [FORBIDDEN/8/index write (api)];",
                )
            index = self.engine.index(action.index, auto_create=True)
            if action.op == "delete":
                result = self.engine.delete(
                    index,
                    action.doc_id,
                    version=action.version,
                    version_type=action.version_type,
                )
            else:
                if action.source_error is not None:
                    raise ApiError(400, "mapper_parsing_exception", action.source_error)
                result = self.engine.write(
                    index,
                    action.doc_id,
                    action.source,
                    version=action.version,
                    version_type=action.version_type,
                    op_type=action.op,
                )
        except ApiError as error:
            return {action.op: {**base, "status": error.status, "error": error.error_object()}}
        return {action.op: {**base, **_write_fields(result), "status": result.status}}

    def _get(self, index: Index, doc_id: str) -> Response:
        doc = index.docs.get(doc_id)
        base = {"_index": index.name, "_id": doc_id}
        if doc is None:
            return _json(404, {**base, "found": False})
        return _json(
            200,
            {
                **base,
                "_version": doc.version,
                "_seq_no": doc.seq_no,
                "_primary_term": 1,
                "found": True,
                "_source": doc.source,
            },
        )

    def _delete(self, index: Index, doc_id: str, params: dict[str, str]) -> Response:
        version_type = params.get("version_type", "internal")
        version = _version_param(params.get("version"))
        _validate_versioning("delete", doc_id, version, version_type)
        result = self.engine.delete(index, doc_id, version=version, version_type=version_type)
        if params.get("refresh") in ("", "true", "wait_for"):
            index.refresh()
        return _json(
            result.status,
            {"_index": index.name, "_id": doc_id, **_write_fields(result)},
        )

    def _count(self, index: Index, body: bytes) -> Response:
        spec = _request_object(body, frozenset({"query"}))
        hits = self.engine.search(index, spec.get("query"))
        return _json(200, {"count": len(hits), "_shards": _shards()["_shards"]})

    def _sorted_hits(
        self,
        index: Index,
        page: list[tuple[float, Any]],
        total: int,
        sort: str | None,
        wanted: object,
    ) -> Response:
        return _json(
            200,
            {
                "took": 1,
                "timed_out": False,
                "_shards": _shards()["_shards"],
                "hits": {
                    "total": {"value": total, "relation": "eq"},
                    "max_score": None,
                    "hits": [_hit(index, doc, score, sort, wanted) for score, doc in page],
                },
            },
        )

    def _mget(self, index: Index, body: bytes) -> Response:
        spec = _request_object(body, frozenset({"ids", "docs"}))
        if "ids" in spec:
            ids = spec["ids"]
        elif "docs" in spec and isinstance(spec["docs"], list):
            ids = [entry.get("_id") if isinstance(entry, dict) else None for entry in spec["docs"]]
        else:
            raise ApiError(400, "action_request_validation_exception", "no documents to get")
        if not isinstance(ids, list) or not ids:
            raise ApiError(400, "action_request_validation_exception", "no documents to get")
        if not all(isinstance(doc_id, str) for doc_id in ids):
            raise ApiError(400, "action_request_validation_exception", "id is missing")
        docs = []
        for doc_id in ids:
            doc = index.docs.get(doc_id)
            base = {"_index": index.name, "_id": doc_id}
            if doc is None:
                docs.append({**base, "found": False})
            else:
                docs.append(
                    {
                        **base,
                        "_version": doc.version,
                        "_seq_no": doc.seq_no,
                        "_primary_term": 1,
                        "found": True,
                        "_source": doc.source,
                    }
                )
        return _json(200, {"docs": docs})

    def _search(self, index: Index, params: dict[str, str], body: bytes) -> Response:
        spec = _request_object(
            body, frozenset({"query", "size", "from", "sort", "search_after", "_source"})
        )
        size = _int_value(params.get("size", spec.get("size", 10)), "size")
        start = _int_value(params.get("from", spec.get("from", 0)), "from")
        hits = self.engine.search(index, spec.get("query"))
        sort = _sort_on_id(spec.get("sort"))
        after = spec.get("search_after")
        if after is not None:
            if sort is None:
                raise ApiError(400, "parsing_exception", "Sort must contain at least one field.")
            if not isinstance(after, list) or len(after) != 1:
                count = len(after) if isinstance(after, list) else 1
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    f"search_after has {count} value(s) but sort has 1.",
                )
            if start not in (0, -1):
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    "`from` parameter must be set to 0 when `search_after` is used.",
                )
        if sort is not None:
            hits = sorted(hits, key=lambda hit: hit[1].doc_id, reverse=sort == "desc")
            if after is not None:
                marker = str(after[0])
                hits = [
                    hit
                    for hit in hits
                    if (hit[1].doc_id > marker if sort == "asc" else hit[1].doc_id < marker)
                ]
        page = hits[start : start + size]
        if sort is not None or "_source" in spec:
            return self._sorted_hits(index, page, len(hits), sort, spec.get("_source", True))
        return _json(
            200,
            {
                "took": 1,
                "timed_out": False,
                "_shards": _shards()["_shards"],
                "hits": {
                    "total": {"value": len(hits), "relation": "eq"},
                    "max_score": page[0][0] if page else None,
                    "hits": [
                        {
                            "_index": index.name,
                            "_id": doc.doc_id,
                            "_score": score,
                            "_source": doc.source,
                        }
                        for score, doc in page
                    ],
                },
            },
        )


def _hit(index: Index, doc: Any, score: Any, sort: str | None, wanted: object) -> dict[str, Any]:
    hit: dict[str, Any] = {"_index": index.name, "_id": doc.doc_id, "_score": score}
    if sort is not None:
        hit["_score"] = None  # sorted hits carry no score (no track_scores)
        hit["sort"] = [doc.doc_id]
    source = _source_filtered(doc.source, wanted)
    if source is not None:
        hit["_source"] = source
    return hit


def _sort_on_id(sort: object) -> str | None:
    """The order of a sort on `_id` ("asc" or "desc"), None without a sort; anything else is
    beyond this double (a 400 that says so)."""
    if sort is None:
        return None
    fields = sort if isinstance(sort, list) else [sort]
    if len(fields) != 1:
        raise ApiError(400, "parsing_exception", "the double sorts on one field (_id) only")
    field = fields[0]
    if field == "_id":
        return "asc"
    if isinstance(field, dict) and list(field) == ["_id"]:
        order = field["_id"]
        if isinstance(order, dict):
            order = order.get("order", "asc")
        if order in ("asc", "desc"):
            return str(order)
    raise ApiError(400, "parsing_exception", "the double sorts on _id only")


def _source_filtered(source: Any, wanted: object) -> Any:
    if wanted is True:
        return source
    if wanted is False:
        return None
    fields = [wanted] if isinstance(wanted, str) else wanted
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise ApiError(400, "parsing_exception", "[_source] must be a boolean, string or array")
    parsed = parse_json(source) if isinstance(source, bytes | str) else source
    return {name: parsed[name] for name in fields if name in parsed}


def _write_fields(result: WriteResult) -> dict[str, Any]:
    return {
        "_version": result.version,
        "result": result.result,
        "_shards": {"total": 2, "successful": 1, "failed": 0},
        "_seq_no": result.seq_no,
        "_primary_term": 1,
    }


def _shards() -> dict[str, Any]:
    return {"_shards": {"total": 1, "successful": 1, "failed": 0}}


class _NoHandler(ApiError):
    def __init__(self, path: str, method: str) -> None:
        super().__init__(
            400, "no_handler", f"no handler found for uri [{path}] and method [{method}]"
        )

    def body(self) -> dict[str, Any]:
        return {"error": self.reason}


def _check_params(path: str, params: dict[str, str], allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed and name not in GLOBAL_PARAMS:
            raise ApiError(
                400,
                "illegal_argument_exception",
                f"request [{path}] contains unrecognized parameter: [{name}]",
            )


def _json_body(body: bytes) -> Any:
    try:
        return parse_json(body)
    except ValueError as error:
        raise ApiError(400, "parsing_exception", f"failed to parse request body: {error}") from None


def _request_object(body: bytes, allowed: frozenset[str]) -> dict[str, Any]:
    if not body.strip():
        return {}
    spec = _json_body(body)
    if not isinstance(spec, dict):
        raise ApiError(400, "parsing_exception", "request body must be an object")
    for key in spec:
        if key not in allowed:
            raise ApiError(400, "parsing_exception", f"Unknown key for a START_OBJECT in [{key}].")
    return spec


def _int_value(value: object, name: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ApiError(400, "illegal_argument_exception", f"Failed to parse int [{name}]") from None
    if number < 0:
        raise ApiError(400, "illegal_argument_exception", f"[{name}] must be >= 0")
    return number


def _version_param(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(
            400, "illegal_argument_exception", f"Failed to parse version [{value}]"
        ) from None


# --- bulk bodies --------------------------------------------------------------------------


@dataclass
class _BulkAction:
    op: str
    index: str
    doc_id: str
    version: int | None
    version_type: str
    source: bytes = b""
    source_error: str | None = None


def _parse_bulk(path_index: str | None, body: bytes) -> list[_BulkAction]:
    if not body:
        raise ApiError(
            400, "action_request_validation_exception", "Validation Failed: 1: no requests added;"
        )
    if not body.endswith(b"\n"):
        raise ApiError(
            400,
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        )
    lines = body[:-1].split(b"\n")
    actions: list[_BulkAction] = []
    problems: list[str] = []
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        action_line = _action_line(line, number)
        ((op, meta),) = action_line.items()
        for name in meta:
            if name not in ACTION_PARAMS:
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    f"Action/metadata line [{number}] contains an unknown parameter [{name}]",
                )
        index = meta.get("_index", path_index)
        doc_id = meta.get("_id")
        version_type = meta.get("version_type", "internal")
        if version_type not in VERSION_TYPES:
            raise ApiError(
                400, "illegal_argument_exception", f"No version type match [{version_type}]"
            )
        version = meta.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise ApiError(
                400, "illegal_argument_exception", f"Failed to parse version [{version}]"
            )
        action = _BulkAction(
            op, str(index or ""), "" if doc_id is None else str(doc_id), version, version_type
        )
        if index is None:
            problems.append("index is missing")
        if doc_id is None:
            problems.append("an id is required (the double does not generate ids)")
        elif len(str(doc_id).encode("utf-8")) > MAX_ID_BYTES:
            size = len(str(doc_id).encode("utf-8"))
            problems.append(
                f"id [{doc_id}] is too long, must be no longer than 512 bytes but was: {size}"
            )
        problems.extend(_versioning_problems(op, version, version_type))
        if op in ("index", "create"):
            if number >= len(lines):
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    "The bulk request must be terminated by a newline [\\n]",
                )
            source = lines[number]
            number += 1
            action.source = source
            try:
                parsed = parse_json(source)
                if not isinstance(parsed, dict):
                    action.source_error = "failed to parse: the source must be an object"
            except ValueError as error:
                action.source_error = f"failed to parse: {error}"
        actions.append(action)
    if problems:
        listed = "".join(f"{i}: {p};" for i, p in enumerate(problems, 1))
        raise ApiError(400, "action_request_validation_exception", f"Validation Failed: {listed}")
    return actions


def _action_line(line: bytes, number: int) -> dict[str, Any]:
    try:
        value = parse_json(line) if line.strip() else None
    except ValueError:
        value = None
    if not isinstance(value, dict) or len(value) != 1:
        raise ApiError(
            400,
            "illegal_argument_exception",
            f"Malformed action/metadata line [{number}], expected START_OBJECT",
        )
    ((op, meta),) = value.items()
    if op not in ("index", "create", "delete", "update"):
        raise ApiError(
            400,
            "illegal_argument_exception",
            f"Malformed action/metadata line [{number}], expected one of [create, delete, "
            f"index, update] but found [{op}]",
        )
    if op == "update":
        raise ApiError(400, "illegal_argument_exception", "the double does not support [update]")
    if not isinstance(meta, dict):
        raise ApiError(
            400,
            "illegal_argument_exception",
            f"Malformed action/metadata line [{number}], expected START_OBJECT",
        )
    return value


def _versioning_problems(op: str, version: int | None, version_type: str) -> list[str]:
    if version_type == "internal":
        if version is not None:
            return [
                "internal versioning can not be used for optimistic concurrency control. "
                "Please use `if_seq_no` and `if_primary_term` instead"
            ]
        return []
    if op == "create":
        return ["create operations only support internal versioning. use index instead"]
    if version is None or not 0 <= version <= MAX_VERSION:
        shown = -3 if version is None else version  # Versions.MATCH_ANY when absent
        return [f"illegal version value [{shown}] for version type [{version_type.upper()}]"]
    return []


def _validate_versioning(op: str, doc_id: str, version: int | None, version_type: str) -> None:
    if version_type not in VERSION_TYPES:
        raise ApiError(400, "illegal_argument_exception", f"No version type match [{version_type}]")
    problems = _versioning_problems(op, version, version_type)
    if problems:
        listed = "".join(f"{i}: {p};" for i, p in enumerate(problems, 1))
        raise ApiError(400, "action_request_validation_exception", f"Validation Failed: {listed}")


# --- SigV4 --------------------------------------------------------------------------------

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


def _verify_sigv4(
    check: SigV4Check, method: str, target: str, headers: dict[str, str], body: bytes
) -> None:
    match = _AUTHORIZATION.fullmatch(headers.get("authorization", ""))
    if match is None:
        raise _Forbidden("Authorization header requires a SigV4 signature")
    if (match["key"], match["region"], match["service"]) != (
        check.access_key,
        check.region,
        check.service,
    ):
        raise _Forbidden("The security token included in the request is invalid")
    if headers.get("x-amz-content-sha256") != hashlib.sha256(body).hexdigest():
        raise _Forbidden("The request body does not match X-Amz-Content-SHA256")
    if check.token is not None and headers.get("x-amz-security-token") != check.token:
        raise _Forbidden("The security token included in the request is invalid")
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        raise _Forbidden("host and x-amz-date must be signed")
    missing = [name for name in signed if name not in headers]
    if missing:
        raise _Forbidden(f"signed headers missing from the request: {missing}")
    request = AWSRequest(
        method=method,
        url=f"http://{headers['host']}{target}",
        data=body,
        headers={name: headers[name] for name in signed},
    )
    request.context["timestamp"] = headers["x-amz-date"]
    auth = SigV4Auth(
        Credentials(check.access_key, check.secret_key, check.token), check.service, check.region
    )
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    if expected != match["signature"]:
        raise _Forbidden(
            "The request signature we calculated does not match the signature you provided."
        )


class _Forbidden(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(403, "security_exception", message)

    def body(self) -> dict[str, Any]:
        return {"message": self.reason}


# --- HTTP ---------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: OpenSearchDouble
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect
    # Headers and body go out in separate writes; without this, Nagle's algorithm and the
    # client's delayed ACK add 40 ms to each response.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            self._respond(Response(400, b'{"error":"chunked bodies are not supported"}'), False)
            return
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = self.owner.handle(self.command, self.path, headers, body)
        self._respond(response, self.command != "HEAD")

    def _respond(self, response: Response, with_body: bool) -> None:
        self.send_response(response.status)
        self.send_header("content-type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if with_body and response.body:
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:  # silence per-request logging
        return None
