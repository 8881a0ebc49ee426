"""The index semantics of the OpenSearch double: documents, versions, refresh, queries.

What it models, as OpenSearch does it:
- documents keep their `_source` bytes verbatim (GET and search return them as sent);
- versioning: internal (1, 2, ...) or external / external_gte (`version` given by the caller;
  a conflict is 409 version_conflict_engine_exception with OpenSearch's reason text);
- deletes remember their version for `gc_deletes_s` (index.gc_deletes, 60 s by default): a
  versioned write older than a remembered delete conflicts; after that window it is a create;
- GET is real time; search and count see the documents as of the last refresh;
- every indexed document goes through the index's mapping first (`mapping.py`: explicit
  mappings, dynamic mapping, the field and depth limits), before its version is checked.

Queries: match_all, term, terms, match, query_string (terms, optional `field:term`, OR),
exists and bool (must, filter, should, must_not). Anything else is a parsing_exception.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.opensearch_double.errors import ApiError
from tests.opensearch_double.mapping import Mappings

MAX_VERSION = 2**63 - 1


def parse_json(data: bytes) -> Any:
    """JSON with exact numbers (Decimal for non-integers), as OpenSearch parses them."""
    return json.loads(data, parse_float=Decimal)


@dataclass
class Document:
    doc_id: str
    source: bytes
    parsed: dict[str, Any]
    version: int
    seq_no: int


@dataclass
class Index:
    name: str
    uuid: str
    mapping: Mappings
    docs: dict[str, Document] = field(default_factory=dict)
    # id -> (version, monotonic time of the delete)
    deletes: dict[str, tuple[int, float]] = field(default_factory=dict)
    searchable: dict[str, Document] = field(default_factory=dict)
    seq_no: int = -1

    def refresh(self) -> None:
        self.searchable = dict(self.docs)


@dataclass(frozen=True)
class WriteResult:
    status: int
    result: str
    version: int
    seq_no: int


class Engine:
    """The documents of every index, and the write and query rules."""

    def __init__(self, gc_deletes_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.indices: dict[str, Index] = {}
        self.gc_deletes_s = gc_deletes_s
        self._clock = clock
        self._uuids = 0

    # --- indices --------------------------------------------------------------------------

    def create_index(self, name: str, body: dict[str, Any] | None) -> Index:
        check_index_name(name)
        if name in self.indices:
            raise ApiError(
                400,
                "resource_already_exists_exception",
                f"index [{name}/{self.indices[name].uuid}] already exists",
                index=name,
            )
        spec = body or {}
        settings = spec.get("settings", {})
        if not isinstance(settings, dict):
            raise ApiError(400, "settings_exception", "Failed to load settings from [settings]")
        mapping = Mappings(name, spec.get("mappings", {}), settings)
        self._uuids += 1
        index = Index(name, f"uuid{self._uuids:06d}", mapping)
        self.indices[name] = index
        return index

    def index(self, name: str, *, auto_create: bool = False) -> Index:
        found = self.indices.get(name)
        if found is not None:
            return found
        if auto_create:
            return self.create_index(name, None)
        raise ApiError(404, "index_not_found_exception", f"no such index [{name}]", index=name)

    # --- writes ---------------------------------------------------------------------------

    def write(
        self,
        index: Index,
        doc_id: str,
        source: bytes,
        *,
        version: int | None,
        version_type: str,
        op_type: str = "index",
    ) -> WriteResult:
        """Index (or create) one document; ApiError(409) on a version conflict."""
        parsed = parse_json(source)
        if not isinstance(parsed, dict):
            raise ApiError(400, "mapper_parsing_exception", "failed to parse")
        # OpenSearch parses (and maps) the document before the engine checks its version.
        index.mapping.apply(parsed, doc_id)
        current = self._current_version(index, doc_id)
        exists = doc_id in index.docs
        if op_type == "create" and exists:
            raise self._conflict(
                index,
                doc_id,
                f"[{doc_id}]: version conflict, document already exists "
                f"(current version [{current}])",
            )
        if version_type == "internal":
            new_version = 1 if current is None else current + 1
        else:
            assert version is not None
            if current is not None:
                self._check_external(index, doc_id, current, version, version_type)
            new_version = version
        index.seq_no += 1
        index.docs[doc_id] = Document(doc_id, source, parsed, new_version, index.seq_no)
        index.deletes.pop(doc_id, None)
        status, result = (200, "updated") if exists else (201, "created")
        return WriteResult(status, result, new_version, index.seq_no)

    def delete(
        self, index: Index, doc_id: str, *, version: int | None, version_type: str
    ) -> WriteResult:
        """Delete one document; result "not_found" (404) when there was none."""
        current = self._current_version(index, doc_id)
        exists = doc_id in index.docs
        if version_type != "internal":
            assert version is not None
            if current is not None:
                self._check_external(index, doc_id, current, version, version_type)
            new_version = version
        else:
            new_version = (current or 0) + 1
        index.seq_no += 1
        index.docs.pop(doc_id, None)
        if version_type != "internal" or exists:
            index.deletes[doc_id] = (new_version, self._clock())
        if not exists:
            return WriteResult(404, "not_found", new_version, index.seq_no)
        return WriteResult(200, "deleted", new_version, index.seq_no)

    def _current_version(self, index: Index, doc_id: str) -> int | None:
        doc = index.docs.get(doc_id)
        if doc is not None:
            return doc.version
        deleted = index.deletes.get(doc_id)
        if deleted is None:
            return None
        version, at = deleted
        if self._clock() - at >= self.gc_deletes_s:
            del index.deletes[doc_id]  # index.gc_deletes: the delete's version is forgotten
            return None
        return version

    def _check_external(
        self, index: Index, doc_id: str, current: int, version: int, version_type: str
    ) -> None:
        if version_type == "external" and version <= current:
            raise self._conflict(
                index,
                doc_id,
                f"[{doc_id}]: version conflict, current version [{current}] is higher or "
                f"equal to the one provided [{version}]",
            )
        if version_type == "external_gte" and version < current:
            raise self._conflict(
                index,
                doc_id,
                f"[{doc_id}]: version conflict, current version [{current}] is higher than "
                f"the one provided [{version}]",
            )

    @staticmethod
    def _conflict(index: Index, doc_id: str, reason: str) -> ApiError:
        return ApiError(
            409,
            "version_conflict_engine_exception",
            reason,
            index=index.name,
            shard="0",
            index_uuid=index.uuid,
        )

    # --- queries --------------------------------------------------------------------------

    def search(self, index: Index, query: dict[str, Any] | None) -> list[tuple[float, Document]]:
        """Searchable (refreshed) documents matching `query`, best score first, then by id."""
        matcher = compile_query(query if query is not None else {"match_all": {}})
        hits: list[tuple[float, str, Document]] = []
        for doc_id, doc in index.searchable.items():
            score = matcher(doc.parsed)
            if score is not None:
                hits.append((score, doc_id, doc))
        hits.sort(key=lambda hit: (-hit[0], hit[1]))
        return [(score, doc) for score, _, doc in hits]


# --- index names --------------------------------------------------------------------------

_INDEX_NAME = re.compile(r"[a-z0-9][^A-Z\\/*?\"<>| ,#:]{0,254}")


def check_index_name(name: str) -> None:
    if not _INDEX_NAME.fullmatch(name):
        raise ApiError(
            400,
            "invalid_index_name_exception",
            f"Invalid index name [{name}], must be lowercase and must not start with '_', "
            "'-' or '+' or contain \\, /, *, ?, \", <, >, |, space, ',', #, :",
            index=name,
        )


# --- queries ------------------------------------------------------------------------------

# A compiled query: the document's score, or None if it does not match.
Matcher = Callable[[dict[str, Any]], float | None]

_WORD = re.compile(r"\w+")


def compile_query(query: object) -> Matcher:
    if not isinstance(query, dict) or len(query) != 1:
        raise _parsing("query malformed, must be an object with exactly one query type")
    ((kind, spec),) = query.items()
    if kind == "match_all":
        return lambda _doc: 1.0
    if kind == "term":
        path, value = _field_value(kind, spec, "value")
        return lambda doc: 1.0 if any(_same(leaf, value) for leaf in _leaves(doc, path)) else None
    if kind == "terms":
        if not isinstance(spec, dict) or len(spec) != 1:
            raise _parsing("[terms] query malformed")
        ((path, values),) = spec.items()
        if not isinstance(values, list):
            raise _parsing("[terms] query requires an array of values")
        return lambda doc: (
            1.0 if any(_same(leaf, v) for leaf in _leaves(doc, path) for v in values) else None
        )
    if kind == "match":
        path, text = _field_value(kind, spec, "query")
        return _words_matcher({path: _words(str(text))})
    if kind == "query_string":
        if not isinstance(spec, dict) or "query" not in spec:
            raise _parsing("[query_string] requires a 'query'")
        return _words_matcher(_query_string_terms(str(spec["query"])))
    if kind == "exists":
        if not isinstance(spec, dict) or not isinstance(spec.get("field"), str):
            raise _parsing("[exists] requires a 'field'")
        path = spec["field"]
        return lambda doc: 1.0 if any(True for _ in _leaves(doc, path)) else None
    if kind == "bool":
        return _bool_matcher(spec)
    raise _parsing(f"unknown query [{kind}]")


def _parsing(reason: str) -> ApiError:
    return ApiError(400, "parsing_exception", reason)


def _field_value(kind: str, spec: object, inner: str) -> tuple[str, object]:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise _parsing(f"[{kind}] query doesn't support multiple fields")
    ((path, value),) = spec.items()
    if isinstance(value, dict):
        if inner not in value:
            raise _parsing(f"[{kind}] query requires '{inner}'")
        value = value[inner]
    return path, value


def _bool_matcher(spec: object) -> Matcher:
    if not isinstance(spec, dict):
        raise _parsing("[bool] query malformed")
    clauses: dict[str, list[Matcher]] = {}
    for occur, value in spec.items():
        if occur not in ("must", "filter", "should", "must_not"):
            raise _parsing(f"[bool] query does not support [{occur}]")
        items = value if isinstance(value, list) else [value]
        clauses[occur] = [compile_query(item) for item in items]
    must = clauses.get("must", []) + clauses.get("filter", [])
    should = clauses.get("should", [])
    must_not = clauses.get("must_not", [])

    def match(doc: dict[str, Any]) -> float | None:
        score = 0.0
        for matcher in must:
            found = matcher(doc)
            if found is None:
                return None
            score += found
        if any(matcher(doc) is not None for matcher in must_not):
            return None
        matched_should = [s for s in (m(doc) for m in should) if s is not None]
        if should and not must and not matched_should:
            return None
        return score + sum(matched_should) or 1.0

    return match


def _query_string_terms(text: str) -> dict[str | None, list[str]]:
    terms: dict[str | None, list[str]] = {}
    for token in text.split():
        if token in ("OR", "AND"):
            continue
        path, _, word = token.rpartition(":")
        terms.setdefault(path or None, []).extend(_words(word))
    return terms


def _words_matcher(terms: dict[str | None, list[str]]) -> Matcher:
    def match(doc: dict[str, Any]) -> float | None:
        score = 0.0
        for path, words in terms.items():
            leaves = _leaves(doc, path) if path is not None else _all_leaves(doc)
            found = {word for leaf in leaves for word in _words(_text(leaf))}
            score += sum(1.0 for word in words if word in found)
        return score if score > 0 else None

    return match


def _words(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _same(leaf: object, value: object) -> bool:
    # JSON true is not the number 1 (Python's bool is an int).
    if isinstance(leaf, bool) or isinstance(value, bool):
        return isinstance(leaf, bool) and isinstance(value, bool) and leaf == value
    if isinstance(leaf, int | Decimal) and isinstance(value, int | Decimal):
        return Decimal(leaf) == Decimal(value)
    return leaf == value


def _leaves(doc: object, path: str) -> Iterator[object]:
    """The values at a dotted path; arrays are flattened as OpenSearch does."""
    current: list[object] = [doc]
    for part in path.split("."):
        following: list[object] = []
        for value in current:
            for member in value if isinstance(value, list) else [value]:
                if isinstance(member, dict) and part in member:
                    following.append(member[part])
        current = following
    for value in current:
        yield from _flatten(value)


def _all_leaves(doc: object) -> Iterator[object]:
    if isinstance(doc, dict):
        for value in doc.values():
            yield from _all_leaves(value)
    else:
        yield from _flatten(doc)


def _flatten(value: object) -> Iterator[object]:
    if isinstance(value, list):
        for member in value:
            yield from _flatten(member)
    elif isinstance(value, dict):
        yield from _all_leaves(value)
    elif value is not None:
        yield value
