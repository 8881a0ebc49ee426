"""Per-pipeline record filters, in the syntax of Lambda's FilterCriteria (event patterns).

A filter is a JSON pattern matched against the change record as JSON (`eventName`,
`dynamodb.NewImage.<attr>.<type>`, ...); a record passes when any of a pipeline's filters
matches. Matchers: a list of literals, `prefix`, `suffix`, `equals-ignore-case`,
`anything-but` (literals or a prefix), `numeric` (operator/value pairs; DynamoDB's number
strings compare as numbers), `exists`. Nested objects descend into the record; a field holding
a list matches if any element does.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import orjson

from consumer.records import ChangeEvent, DecodeError

_MISSING = object()
_NUMERIC_OPERATORS: dict[str, Callable[[Decimal, Decimal], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class FilterSyntaxError(ValueError):
    """A filter pattern that is not valid; the message names the path."""


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _check_numeric(
    spec: Any, path: str
) -> list[tuple[Callable[[Decimal, Decimal], bool], Decimal]]:
    if not isinstance(spec, list) or not spec or len(spec) % 2:
        raise FilterSyntaxError(f"{path}: numeric needs operator/value pairs")
    checks = []
    for op_name, bound in zip(spec[::2], spec[1::2], strict=True):
        op = _NUMERIC_OPERATORS.get(op_name)
        number = _number(bound)
        if op is None or number is None or isinstance(bound, str):
            raise FilterSyntaxError(f"{path}: bad numeric pair {op_name!r}, {bound!r}")
        checks.append((op, number))
    return checks


def _starts_with(prefix: str, value: Any) -> bool:
    return isinstance(value, str) and value.startswith(prefix)


def _ends_with(suffix: str, value: Any) -> bool:
    return isinstance(value, str) and value.endswith(suffix)


def _equals_ignore_case(folded: str, value: Any) -> bool:
    return isinstance(value, str) and value.casefold() == folded


def _anything_but(excluded: _Matcher, value: Any) -> bool:
    return value is not _MISSING and not excluded.matches_value(value)


def _literal_equal(value: Any, literal: Any) -> bool:
    # True == 1 in Python; in a pattern they are different values.
    if isinstance(value, bool) or isinstance(literal, bool):
        return type(value) is type(literal) and value == literal
    return bool(value == literal)


class _Matcher:
    """One compiled value matcher (a list of alternatives)."""

    def __init__(self, alternatives: Sequence[Any], path: str) -> None:
        if not isinstance(alternatives, list) or not alternatives:
            raise FilterSyntaxError(f"{path}: a pattern value must be a non-empty list")
        self._literals: list[Any] = []
        self._tests: list[Callable[[Any], bool]] = []
        self.exists: bool | None = None
        for alternative in alternatives:
            if isinstance(alternative, dict):
                self._compile_operator(alternative, path)
            elif isinstance(alternative, list):
                raise FilterSyntaxError(f"{path}: nested lists are not patterns")
            else:
                self._literals.append(alternative)

    def _compile_operator(self, spec: Mapping[str, Any], path: str) -> None:
        if len(spec) != 1:
            raise FilterSyntaxError(f"{path}: one operator per object, got {sorted(spec)}")
        ((name, argument),) = spec.items()
        if name == "prefix" and isinstance(argument, str):
            self._tests.append(partial(_starts_with, argument))
        elif name == "suffix" and isinstance(argument, str):
            self._tests.append(partial(_ends_with, argument))
        elif name == "equals-ignore-case" and isinstance(argument, str):
            self._tests.append(partial(_equals_ignore_case, argument.casefold()))
        elif name == "anything-but":
            inner = _Matcher(argument if isinstance(argument, list) else [argument], path)
            self._tests.append(partial(_anything_but, inner))
        elif name == "numeric":
            checks = _check_numeric(argument, path)

            def numeric(value: Any, checks: Any = checks) -> bool:
                number = _number(value)
                return number is not None and all(op(number, bound) for op, bound in checks)

            self._tests.append(numeric)
        elif name == "exists" and isinstance(argument, bool):
            self.exists = argument
        else:
            raise FilterSyntaxError(f"{path}: unsupported operator {name!r} with {argument!r}")

    def matches_value(self, value: Any) -> bool:
        if isinstance(value, list):
            return any(self.matches_value(element) for element in value)
        if any(_literal_equal(value, literal) for literal in self._literals):
            return True
        return any(test(value) for test in self._tests)

    def matches(self, value: Any) -> bool:
        if self.exists is not None:
            present = value is not _MISSING
            if present != self.exists:
                return False
            if not self._literals and not self._tests:
                return True
        if value is _MISSING:
            return False
        return self.matches_value(value)


def _compile(pattern: Mapping[str, Any], path: str) -> dict[str, Any]:
    """A compiled pattern: per field, its value matcher or the compiled nested pattern."""
    fields: dict[str, Any] = {}
    for name, spec in pattern.items():
        where = f"{path}.{name}"
        fields[name] = _compile(spec, where) if isinstance(spec, Mapping) else _Matcher(spec, where)
    return fields


def _matches(fields: Mapping[str, Any], record: Any) -> bool:
    for name, spec in fields.items():
        value = record.get(name, _MISSING) if isinstance(record, Mapping) else _MISSING
        if not (spec.matches(value) if isinstance(spec, _Matcher) else _matches(spec, value)):
            return False
    return True


class RecordFilter:
    """Any of several patterns (Lambda allows up to 5 per event source mapping)."""

    def __init__(self, patterns: Sequence[Mapping[str, Any] | str]) -> None:
        compiled = []
        for index, pattern in enumerate(patterns):
            if isinstance(pattern, str):
                try:
                    pattern = orjson.loads(pattern)
                except orjson.JSONDecodeError as error:
                    raise FilterSyntaxError(f"filter {index + 1} is not JSON: {error}") from error
            try:
                if not isinstance(pattern, Mapping) or not pattern:
                    raise FilterSyntaxError("a filter pattern must be a non-empty JSON object")
                compiled.append(_compile(pattern, "$"))
            except FilterSyntaxError as error:
                raise FilterSyntaxError(f"filter {index + 1}: {error}") from error
        self._patterns = compiled

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def matches(self, record: Mapping[str, Any]) -> bool:
        return not self._patterns or any(_matches(p, record) for p in self._patterns)

    def selects(self, event: ChangeEvent) -> bool:
        """Whether the pipeline takes this change: `matches` on its record, parsed once and
        shared with the sinks' image views (`ChangeEvent.record`)."""
        if not self._patterns:
            return True
        try:
            record: Any = event.record()
        except DecodeError:
            # It breaks a decode rule (a repeated key): match it as plain JSON reads it, and
            # let the sinks' views reject it (parked), rather than drop it here unseen.
            try:
                record = orjson.loads(event.raw)
            except orjson.JSONDecodeError:
                record = {}
        return self.matches(record)
