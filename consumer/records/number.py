"""DynamoDB numbers: exact decimals, never floats.

DynamoDB numbers have at most 38 significant digits and magnitudes from 1E-130 to below
1E+126 ("Supported data types and naming rules"). boto3's context (prec=38, Emin=-128,
Emax=126, rounding trapped) accepts 1E+126 and 1E-165 and rejects 38-digit numbers near
1E-130; this one keeps DynamoDB's range (Emax=125; Emin=-130 with Subnormal trapped), and
traps InvalidOperation so that text that is not a number raises instead of becoming NaN.
On every number DynamoDB can hold the result is boto3's.
"""

from __future__ import annotations

import re
from decimal import (
    Clamped,
    Context,
    Decimal,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    Subnormal,
    Underflow,
)

from consumer.records.errors import InvalidAttribute

DYNAMODB_NUMBERS = Context(
    prec=38,
    Emax=125,
    Emin=-130,
    traps=[Clamped, Overflow, Inexact, Rounded, Subnormal, Underflow, InvalidOperation],
)

# Bound method: the hot loops in attribute.py call it directly to save a Python call.
create_number = DYNAMODB_NUMBERS.create_decimal

# RFC 8259 number grammar. A DynamoDB number literal that matches it is written to JSON as is.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def parse_number(text: object) -> Decimal:
    """The exact value of a DynamoDB number string; InvalidAttribute if it is not one."""
    if type(text) is not str:
        raise InvalidAttribute(f"a number must be a string, not {type(text).__name__}")
    try:
        number = create_number(text)
    except InvalidOperation:
        raise InvalidAttribute(NOT_A_NUMBER) from None
    except ArithmeticError:
        raise InvalidAttribute(OUT_OF_RANGE) from None
    if not number.is_finite():
        raise InvalidAttribute(NOT_FINITE)
    return number


# The reasons: the rule broken, never the value (record contents stay out of messages, which
# reach logs; the dead-letter message carries the record itself).
NOT_A_NUMBER = "not a number: an N value must be a decimal number"
NOT_FINITE = "not a finite number: DynamoDB has no NaN or Infinity"
OUT_OF_RANGE = (
    "not a DynamoDB number: at most 38 significant digits, magnitude from 1E-130 to below 1E+126"
)


class JsonNumber(Decimal):
    """A number in an image's JSON view: an exact Decimal that keeps its JSON literal.

    `literal` is the text DynamoDB sent when that text is valid JSON number syntax (it always
    is for numbers DynamoDB writes); otherwise (a leading "+" or ".", a trailing ".", leading
    zeros) it is the shortest change that makes it valid: `str()` of the exact Decimal, which
    keeps every digit and the exponent. `to_json_bytes` writes `literal` verbatim, so JSON output
    carries exactly DynamoDB's digits. Arithmetic gives plain Decimals.
    """

    __slots__ = ("literal",)
    literal: str

    def __new__(cls, text: str) -> JsonNumber:
        value = parse_number(text)
        number = Decimal.__new__(cls, value)
        number.literal = text if _JSON_NUMBER.fullmatch(text) else str(value)
        return number

    def __repr__(self) -> str:
        return f"JsonNumber({self.literal!r})"
