"""Index mappings in the OpenSearch double: explicit mappings and dynamic mapping, as
OpenSearch applies them when it indexes a document.

Sources (OpenSearch 2.x): `DocumentParser` (parseObjectOrField, parseDynamicValue,
createBuilderFromDynamicValue, parseNullValue), `NumberFieldMapper`, `BooleanFieldMapper`,
`DateFieldMapper`, `KeywordFieldMapper`, `ObjectMapper`, `MappingLookup.checkFieldLimit` /
`checkObjectDepthLimit`, and the docs pages "Dynamic mapping", "Mappings and field types",
"Object field type" (`enabled: false`), "Index settings" (index.mapping.*.limit).

What is modelled:
- dynamic mapping: the first value seen for a field path fixes its type: JSON integers
  (INT, LONG and BIG_INTEGER alike) map to `long`, decimals and exponents to `float`, booleans
  to `boolean`, objects to `object`, strings to `text` with a `keyword` sub-field
  (ignore_above 256); with `date_detection` (on by default) a string that is not a number and
  parses with a dynamic date format (`strict_date_optional_time`, `yyyy/MM/dd HH:mm:ss Z`,
  `yyyy/MM/dd Z`) maps to `date`; with `numeric_detection` (off by default) numeric strings
  map to `long`/`float`. Nulls and empty arrays create no mapping. Array elements are values
  of the same field. Fields added earlier in the same document are already in force.
- values against a mapped type: `long` out of range (input_coercion_exception "out of range
  of long"), non-finite `float`/`double` ("supports only finite values"), a non-date string in
  a `date`, anything but true/false in a `boolean`, an object where a value is mapped or a
  value where an object is mapped: all 400 mapper_parsing_exception. Numbers and numeric
  strings are coerced into numeric fields (fractions truncated for integers). A `keyword`
  value longer than `ignore_above` characters is not indexed; one over Lucene's 32,766-byte
  term limit is a 400 illegal_argument_exception ("immense term").
- `dynamic`: true, false (unmapped fields stay in _source only) or strict (400
  strict_dynamic_mapping_exception, nulls included); inherited by sub-objects.
- an object with `enabled: false` is not parsed at all: any value, any shape, any depth.
- limits, checked on each mapping update (explicit at index creation, dynamic per
  document): `index.mapping.total_fields.limit` (1000: object and field mappers, multi-fields
  included) and `index.mapping.depth.limit` (20: an object path's dots + 2): 400
  illegal_argument_exception; the document is not indexed and the mapping is unchanged.
- a dynamic mapping update is kept even if the write then loses a version check, as
  OpenSearch updates the mapping before it indexes.

Field types other than those below are refused at index creation (the double does not model
them), which is stricter than OpenSearch, never kinder.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.opensearch_double.errors import ApiError

DEFAULT_TOTAL_FIELDS_LIMIT = 1000
DEFAULT_DEPTH_LIMIT = 20
MAX_TERM_BYTES = 32766  # Lucene's IndexWriter.MAX_TERM_LENGTH
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
_INTEGER_RANGES = {
    "long": (LONG_MIN, LONG_MAX),
    "integer": (-(2**31), 2**31 - 1),
    "short": (-(2**15), 2**15 - 1),
    "byte": (-(2**7), 2**7 - 1),
}
_FLOAT_MAX = {"float": 3.4028234663852886e38, "double": 1.7976931348623157e308}
LEAF_TYPES = frozenset({"text", "keyword", "boolean", "date", *_INTEGER_RANGES, *_FLOAT_MAX})
_DYNAMIC_VALUES = {"true": "true", "false": "false", "strict": "strict"}

# strict_date_optional_time: yyyy[-MM[-dd[THH[:mm[:ss[.SSS...]]]]]][zone]
_ISO_DATE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})(?:T(?P<H>\d{2})(?::(?P<M>\d{2})"
    r"(?::(?P<S>\d{2})(?:[.,]\d{1,9})?)?)?)?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?"
)
# yyyy/MM/dd HH:mm:ss Z || yyyy/MM/dd Z
_SLASH_DATE = re.compile(
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})(?: (?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2}))?"
    r"(?: ?(?:Z|[+-]\d{2}:?\d{2}))?"
)


def is_date(text: str) -> bool:
    """True if a dynamic date format parses `text` (with valid calendar fields)."""
    for pattern in (_ISO_DATE, _SLASH_DATE):
        match = pattern.fullmatch(text)
        if match is None:
            continue
        parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
        try:
            datetime.datetime(
                parts["y"],
                parts.get("m", 1),
                parts.get("d", 1),
                parts.get("H", 0),
                parts.get("M", 0),
                parts.get("S", 0),
            )
        except ValueError:
            continue
        return True
    return False


def _is_number_text(text: str) -> tuple[bool, bool]:
    """(parses as a Java long, parses as a Java double), as createBuilderFromDynamicValue
    tries: Long.parseLong and Double.parseDouble."""
    as_long = re.fullmatch(r"[+-]?\d+", text) is not None and LONG_MIN <= int(text) <= LONG_MAX
    stripped = text.strip()
    as_double = stripped in ("NaN", "Infinity", "+Infinity", "-Infinity") or (
        re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[fFdD]?", stripped) is not None
    )
    return as_long, as_double


@dataclass
class FieldMapping:
    """One mapped path: a leaf field (`kind` in LEAF_TYPES) or an object."""

    kind: str
    properties: dict[str, FieldMapping] = field(default_factory=dict)
    dynamic: str | None = None  # objects: None inherits
    enabled: bool = True
    ignore_above: int | None = None
    subfields: dict[str, FieldMapping] = field(default_factory=dict)  # multi-fields

    @property
    def is_object(self) -> bool:
        return self.kind == "object"

    def as_json(self) -> dict[str, Any]:
        if self.is_object:
            out: dict[str, Any] = {}
            if not self.enabled:
                out["type"] = "object"
                out["enabled"] = False
            if self.dynamic is not None:
                out["dynamic"] = self.dynamic
            if self.properties:
                out["properties"] = {k: v.as_json() for k, v in self.properties.items()}
            return out
        leaf: dict[str, Any] = {"type": self.kind}
        if self.ignore_above is not None:
            leaf["ignore_above"] = self.ignore_above
        if self.subfields:
            leaf["fields"] = {k: v.as_json() for k, v in self.subfields.items()}
        return leaf

    def copy(self) -> FieldMapping:
        return FieldMapping(
            self.kind,
            {k: v.copy() for k, v in self.properties.items()},
            self.dynamic,
            self.enabled,
            self.ignore_above,
            {k: v.copy() for k, v in self.subfields.items()},
        )


def _mapper_parsing(reason: str, **extra: Any) -> ApiError:
    return ApiError(400, "mapper_parsing_exception", reason, **extra)


def parse_field(name: str, spec: object) -> FieldMapping:
    """An explicit mapping of one field, as PUT /index accepts it."""
    if not isinstance(spec, dict):
        raise _mapper_parsing(f"Expected map for property [fields] on field [{name}]")
    kind = spec.get("type", "object" if "properties" in spec or not spec else None)
    if kind is None and ("enabled" in spec or "dynamic" in spec):
        kind = "object"
    if kind == "object":
        for key in spec:
            if key not in ("type", "properties", "dynamic", "enabled"):
                raise _mapper_parsing(
                    f"Mapping definition for [{name}] has unsupported parameters:  [{key}]"
                )
        props = spec.get("properties", {})
        if not isinstance(props, dict):
            raise _mapper_parsing(f"Expected map for property [properties] on field [{name}]")
        return FieldMapping(
            "object",
            {child: parse_field(child, sub) for child, sub in props.items()},
            _dynamic_value(spec.get("dynamic"), name),
            _boolean_param(spec.get("enabled", True), "enabled", name),
        )
    if kind not in LEAF_TYPES:
        raise _mapper_parsing(f"No handler for type [{kind}] declared on field [{name}]")
    allowed = {"type", "fields", "index", "doc_values", "store", "format"}
    if kind == "keyword":
        allowed.add("ignore_above")
    for key in spec:
        if key not in allowed:
            raise _mapper_parsing(f"unknown parameter [{key}] on mapper [{name}] of type [{kind}]")
    subfields = spec.get("fields", {})
    if not isinstance(subfields, dict):
        raise _mapper_parsing(f"Expected map for property [fields] on field [{name}]")
    ignore_above = spec.get("ignore_above")
    if ignore_above is not None and (not isinstance(ignore_above, int) or ignore_above < 0):
        raise _mapper_parsing(f"[ignore_above] must be a non-negative integer on field [{name}]")
    return FieldMapping(
        kind,
        ignore_above=ignore_above,
        subfields={sub: parse_field(sub, s) for sub, s in subfields.items()},
    )


def _dynamic_value(value: object, name: str) -> str | None:
    if value is None:
        return None
    text = str(value).lower() if isinstance(value, bool | str) else None
    if text not in _DYNAMIC_VALUES:
        raise _mapper_parsing(f"Could not convert [{name}.dynamic] to boolean or strict")
    return _DYNAMIC_VALUES[text]


def _boolean_param(value: object, param: str, name: str) -> bool:
    if value in (True, "true"):
        return True
    if value in (False, "false"):
        return False
    raise _mapper_parsing(f"Failed to parse value [{value}] as only [true] or [false] are allowed.")


def _setting(settings: dict[str, Any], dotted: str) -> Any:
    """An index setting given flat ("index.mapping.depth.limit"), nested, or without "index."."""
    flat = _flatten_settings(settings)
    for key in (dotted, dotted.removeprefix("index.")):
        if key in flat:
            return flat[key]
    return None


def _flatten_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(_flatten_settings(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class Mappings:
    """An index's mapping, and the rules that apply it to documents."""

    def __init__(self, index: str, body: dict[str, Any] | None, settings: dict[str, Any] | None):
        self.index = index
        spec = dict(body or {})
        for key in spec:
            if key not in ("properties", "dynamic", "date_detection", "numeric_detection"):
                raise _mapper_parsing(
                    f"Root mapping definition has unsupported parameters:  [{key}]"
                )
        self.date_detection = _boolean_param(
            spec.get("date_detection", True), "date_detection", "_doc"
        )
        self.numeric_detection = _boolean_param(
            spec.get("numeric_detection", False), "numeric_detection", "_doc"
        )
        root = parse_field("_doc", {"properties": spec.get("properties", {})})
        root.dynamic = _dynamic_value(spec.get("dynamic"), "_doc") or "true"
        self.root = root
        settings = settings or {}
        self.total_fields_limit = int(
            _setting(settings, "index.mapping.total_fields.limit") or DEFAULT_TOTAL_FIELDS_LIMIT
        )
        self.depth_limit = int(
            _setting(settings, "index.mapping.depth.limit") or DEFAULT_DEPTH_LIMIT
        )
        self.check_limits(self.root)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dynamic": self.root.dynamic}
        if not self.date_detection:
            out["date_detection"] = False
        if self.numeric_detection:
            out["numeric_detection"] = True
        out["properties"] = {k: v.as_json() for k, v in self.root.properties.items()}
        return out

    # --- limits ---------------------------------------------------------------------------

    def check_limits(self, root: FieldMapping) -> None:
        count = sum(1 for _ in _mappers(root, ""))
        if count > self.total_fields_limit:
            raise ApiError(
                400,
                "illegal_argument_exception",
                f"Limit of total fields [{self.total_fields_limit}] has been exceeded",
            )
        for path, mapping in _mappers(root, ""):
            if mapping.is_object:
                depth = path.count(".") + 2
                if depth > self.depth_limit:
                    raise ApiError(
                        400,
                        "illegal_argument_exception",
                        f"Limit of mapping depth [{self.depth_limit}] has been exceeded due to "
                        f"object field [{path}]",
                    )

    # --- documents ------------------------------------------------------------------------

    def apply(self, source: dict[str, Any], doc_id: str) -> None:
        """Index `source` against the mapping: raise ApiError as OpenSearch would, else keep
        any dynamic mapping update it makes."""
        updated = self.root.copy()
        changed = _DocumentParser(self, doc_id).parse_object(updated, "", source, "true")
        if changed:
            self.check_limits(updated)
            self.root = updated


def _mappers(mapping: FieldMapping, path: str) -> Iterator[tuple[str, FieldMapping]]:
    for name, child in mapping.properties.items():
        child_path = f"{path}.{name}" if path else name
        yield child_path, child
        yield from _mappers(child, child_path)
        for sub, subfield in child.subfields.items():
            yield f"{child_path}.{sub}", subfield


class _DocumentParser:
    def __init__(self, mappings: Mappings, doc_id: str) -> None:
        self.mappings = mappings
        self.doc_id = doc_id

    def parse_object(
        self, mapping: FieldMapping, path: str, value: dict[str, Any], inherited: str
    ) -> bool:
        """Parse an object's fields into `mapping`; True if the mapping grew."""
        if not mapping.enabled:
            return False
        dynamic = mapping.dynamic or inherited
        changed = False
        for raw_name, child_value in value.items():
            parts = _split_path(raw_name)
            target, target_path = mapping, path
            # Dotted names ("a.b") are objects a -> b.
            for part in parts[:-1]:
                target_path = f"{target_path}.{part}" if target_path else part
                existing = target.properties.get(part)
                if existing is None:
                    if dynamic == "strict":
                        raise _strict(target_path.rpartition(".")[0] or "_doc", part)
                    if dynamic == "false":
                        break
                    existing = target.properties[part] = FieldMapping("object")
                    changed = True
                elif not existing.is_object:
                    raise _mapper_parsing(
                        f"Could not dynamically add mapping for field [{target_path}]. Existing "
                        f"mapping for [{target_path}] must be of type object but found "
                        f"[{existing.kind}]."
                    )
                target = existing
                dynamic = target.dynamic or dynamic
            else:
                changed |= self.parse_field(target, target_path, parts[-1], child_value, dynamic)
        return changed

    def parse_field(
        self, parent: FieldMapping, parent_path: str, name: str, value: object, dynamic: str
    ) -> bool:
        path = f"{parent_path}.{name}" if parent_path else name
        changed = False
        for element in _elements(value):
            mapping = parent.properties.get(name)
            if mapping is None:
                if element is None:
                    if dynamic == "strict":
                        raise _strict(parent_path or "_doc", name)
                    continue  # nulls create no mapping
                if dynamic == "strict":
                    raise _strict(parent_path or "_doc", name)
                if dynamic == "false":
                    return changed
                mapping = parent.properties[name] = self._dynamic_mapping(element)
                changed = True
            changed |= self._parse_value(mapping, path, element, dynamic)
        return changed

    def _dynamic_mapping(self, value: object) -> FieldMapping:
        if isinstance(value, dict):
            return FieldMapping("object")
        if isinstance(value, bool):
            return FieldMapping("boolean")
        if isinstance(value, int):
            return FieldMapping("long")  # INT, LONG and BIG_INTEGER alike
        if isinstance(value, Decimal | float):
            return FieldMapping("float")
        assert isinstance(value, str)
        as_long, as_double = _is_number_text(value)
        if self.mappings.numeric_detection and as_long:
            return FieldMapping("long")
        if self.mappings.numeric_detection and as_double:
            return FieldMapping("float")
        if not as_long and not as_double and self.mappings.date_detection and is_date(value):
            return FieldMapping("date")
        return FieldMapping(
            "text", subfields={"keyword": FieldMapping("keyword", ignore_above=256)}
        )

    def _parse_value(self, mapping: FieldMapping, path: str, value: object, dynamic: str) -> bool:
        if value is None:
            return False
        if mapping.is_object:
            if not mapping.enabled:
                return False
            if not isinstance(value, dict):
                raise _mapper_parsing(
                    f"object mapping for [{path}] tried to parse field [{path.rpartition('.')[2]}]"
                    " as object, but found a concrete value"
                )
            return self.parse_object(mapping, path, value, dynamic)
        self._check_leaf(mapping, path, value)
        for sub, subfield in mapping.subfields.items():
            self._check_leaf(subfield, f"{path}.{sub}", value)
        return False

    def _check_leaf(self, mapping: FieldMapping, path: str, value: object) -> None:
        kind = mapping.kind
        if isinstance(value, dict):
            raise self._failed(
                path, kind, value, "illegal_state_exception", "Can't get text on a START_OBJECT"
            )
        if kind in _INTEGER_RANGES:
            self._check_integer(path, kind, value)
        elif kind in _FLOAT_MAX:
            self._check_float(path, kind, value)
        elif kind == "boolean":
            if not (isinstance(value, bool) or value in ("true", "false", "")):
                raise self._failed(
                    path,
                    kind,
                    value,
                    "illegal_argument_exception",
                    f"Failed to parse value [{_text(value)}] as only [true] or [false] are "
                    "allowed.",
                )
        elif kind == "date":
            text = _text(value)
            if not (is_date(text) or re.fullmatch(r"-?\d+", text)):
                raise self._failed(
                    path,
                    kind,
                    value,
                    "illegal_argument_exception",
                    f"failed to parse date field [{text}] with format "
                    "[strict_date_optional_time||epoch_millis]",
                )
        elif kind == "keyword":
            text = _text(value)
            if mapping.ignore_above is not None and len(text) > mapping.ignore_above:
                return
            size = len(text.encode("utf-8", "surrogatepass"))
            if size > MAX_TERM_BYTES:
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    f'Document contains at least one immense term in field="{path}" (whose '
                    f"UTF8 encoding is longer than the max length {MAX_TERM_BYTES}), all of "
                    "which were skipped.",
                )

    def _check_integer(self, path: str, kind: str, value: object) -> None:
        if isinstance(value, bool):
            raise self._failed(
                path,
                kind,
                value,
                "illegal_argument_exception",
                f"Current token (VALUE_{str(value).upper()}) not numeric",
            )
        number = _as_decimal(value)
        if number is None:
            raise self._failed(
                path, kind, value, "number_format_exception", f'For input string: "{_text(value)}"'
            )
        low, high = _INTEGER_RANGES[kind]
        if not number.is_finite() or not low <= int(number) <= high:
            raise self._failed(
                path,
                kind,
                value,
                "input_coercion_exception",
                f"Numeric value ({_text(value)}) out of range of {kind} ({low} - {high})",
            )

    def _check_float(self, path: str, kind: str, value: object) -> None:
        if isinstance(value, bool):
            raise self._failed(
                path,
                kind,
                value,
                "illegal_argument_exception",
                f"Current token (VALUE_{str(value).upper()}) not numeric",
            )
        number = _as_decimal(value)
        if number is None:
            raise self._failed(
                path, kind, value, "number_format_exception", f'For input string: "{_text(value)}"'
            )
        if not number.is_finite() or abs(number) > Decimal(_FLOAT_MAX[kind]):
            sign = "-" if number.is_signed() else ""
            raise self._failed(
                path,
                kind,
                value,
                "illegal_argument_exception",
                f"[{kind}] supports only finite values, but got [{sign}Infinity]",
            )

    def _failed(self, path: str, kind: str, value: object, cause: str, reason: str) -> ApiError:
        preview = _text(value)[:20]
        return _mapper_parsing(
            f"failed to parse field [{path}] of type [{kind}] in document with id "
            f"'{self.doc_id}'. Preview of field's value: '{preview}'",
            caused_by={"type": cause, "reason": reason},
        )


def _strict(parent: str, name: str) -> ApiError:
    return ApiError(
        400,
        "strict_dynamic_mapping_exception",
        f"mapping set to strict, dynamic introduction of [{name}] within [{parent}] is not allowed",
    )


def _split_path(name: str) -> list[str]:
    if not name.strip():
        raise ApiError(400, "illegal_argument_exception", "field name cannot be an empty string")
    parts = name.split(".")
    if any(not part.strip() for part in parts):
        raise ApiError(
            400,
            "illegal_argument_exception",
            f"object field starting or ending with a [.] makes object resolution ambiguous: "
            f"[{name}]",
        )
    return parts


def _elements(value: object) -> Iterator[object]:
    """A field's values: arrays (nested ones too) are several values of the same field."""
    if isinstance(value, list):
        for member in value:
            yield from _elements(member)
    else:
        yield value


def _as_decimal(value: object) -> Decimal | None:
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
