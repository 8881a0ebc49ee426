"""FilterCriteria-style patterns, as Lambda's event source mapping applies them."""

from __future__ import annotations

from typing import Any

import pytest

from consumer.pipeline.filters import FilterSyntaxError, RecordFilter
from tests.change_factory import destination_record

SHIPPED = destination_record(
    "MODIFY",
    "order#1",
    1,
    new={"status": {"S": "SHIPPED"}, "total": {"N": "42.50"}, "tags": {"SS": ["gift", "express"]}},
    old={"status": {"S": "PAID"}, "total": {"N": "42.50"}},
)
DELETED = destination_record("REMOVE", "order#2", 1, old={"status": {"S": "NEW"}})


@pytest.mark.parametrize(
    ("pattern", "shipped", "deleted"),
    [
        ({"eventName": ["INSERT", "MODIFY"]}, True, False),
        ({"eventName": [{"anything-but": "REMOVE"}]}, True, False),
        ({"dynamodb": {"NewImage": {"status": {"S": ["SHIPPED"]}}}}, True, False),
        ({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "order#"}]}}}}, True, True),
        ({"dynamodb": {"Keys": {"pk": {"S": [{"suffix": "#2"}]}}}}, False, True),
        (
            {"dynamodb": {"NewImage": {"total": {"N": [{"numeric": [">", 40, "<=", 50]}]}}}},
            True,
            False,
        ),
        ({"dynamodb": {"NewImage": {"total": {"N": [{"numeric": [">", 50]}]}}}}, False, False),
        ({"dynamodb": {"NewImage": [{"exists": False}]}}, False, True),
        ({"dynamodb": {"OldImage": {"status": [{"exists": True}]}}}, True, True),
        ({"dynamodb": {"NewImage": {"tags": {"SS": ["gift"]}}}}, True, False),
        (
            {"dynamodb": {"NewImage": {"status": {"S": [{"equals-ignore-case": "shipped"}]}}}},
            True,
            False,
        ),
        ({"userIdentity": [None]}, True, True),
        ({"eventName": [{"anything-but": {"prefix": "MOD"}}]}, False, True),
    ],
)
def test_patterns_match_like_lambda_filter_criteria(
    pattern: dict[str, Any], shipped: bool, deleted: bool
) -> None:
    record_filter = RecordFilter([pattern])
    assert record_filter.matches(SHIPPED) is shipped
    assert record_filter.matches(DELETED) is deleted


def test_several_patterns_are_alternatives_and_none_means_everything() -> None:
    either = RecordFilter(['{"eventName": ["REMOVE"]}', {"eventName": ["MODIFY"]}])
    assert either.matches(SHIPPED) and either.matches(DELETED)
    assert RecordFilter([]).matches(DELETED)
    assert not RecordFilter([])


def test_booleans_are_not_numbers() -> None:
    record = {"flag": True, "count": 1}
    assert RecordFilter([{"flag": [True]}]).matches(record)
    assert not RecordFilter([{"flag": [1]}]).matches(record)
    assert not RecordFilter([{"count": [True]}]).matches(record)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("not json", "filter 1 is not JSON"),
        ({}, "non-empty JSON object"),
        ({"eventName": "INSERT"}, r"\$\.eventName: a pattern value must be a non-empty list"),
        ({"eventName": [{"regex": "x"}]}, "unsupported operator 'regex'"),
        ({"n": [{"numeric": [">"]}]}, "operator/value pairs"),
        ({"n": [{"numeric": ["~", 1]}]}, "bad numeric pair"),
        ({"n": [{"prefix": "a", "suffix": "b"}]}, "one operator per object"),
    ],
)
def test_invalid_patterns_name_the_problem(pattern: Any, message: str) -> None:
    with pytest.raises(FilterSyntaxError, match=message):
        RecordFilter([pattern])
