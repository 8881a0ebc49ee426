"""Record times to epoch microseconds and back, exactly (no float arithmetic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from consumer.records.errors import InvalidRecord

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
# datetime's range ends in year 9999; later times are not valid change times.
MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - EPOCH) // _ONE_US
# ApproximateCreationDateTime values at or above this are microseconds even when the record
# does not say so: as milliseconds they would be after the year 5000.
_INFER_MICROSECONDS_FROM = 10**14

MILLISECOND = "MILLISECOND"
MICROSECOND = "MICROSECOND"


def datetime_from_us(us: int) -> datetime:
    """An aware UTC datetime from epoch microseconds."""
    return EPOCH + timedelta(microseconds=us)


def us_from_datetime(moment: datetime) -> int:
    """Epoch microseconds of a datetime; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // _ONE_US


def kinesis_created_at_us(value: object, precision: object) -> int:
    """ApproximateCreationDateTime of a Kinesis destination record, in epoch microseconds.

    `precision` is the record's ApproximateCreationDateTimePrecision. Without one the value is
    taken as milliseconds (the original format), unless it is too large to be milliseconds.
    """
    if precision == MICROSECOND:
        scale = 1
    elif precision == MILLISECOND:
        scale = 1000
    elif precision is None:
        inferred = isinstance(value, int | float | Decimal) and value >= _INFER_MICROSECONDS_FROM
        scale = 1 if inferred else 1000
    else:
        raise InvalidRecord(f"unknown ApproximateCreationDateTimePrecision {precision!r}")
    return _checked(_scaled(value, scale))


def streams_created_at_us(value: object) -> int:
    """ApproximateCreationDateTime of a DynamoDB Streams record (seconds), in epoch us.

    Accepts epoch seconds as a JSON number (int or float, as the Streams wire format and
    Lambda events carry it), as a Decimal or numeric string, or a datetime (boto3's shape).
    """
    if isinstance(value, datetime):
        return _checked(us_from_datetime(value))
    return _checked(_scaled(value, 1_000_000))


def arrival_ms(value: object) -> int | None:
    """A Kinesis ApproximateArrivalTimestamp (datetime, or epoch seconds) in epoch ms."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return us_from_datetime(value) // 1000
    return _scaled(value, 1000)


def _scaled(value: object, scale: int) -> int:
    """`value * scale` as an int, exactly: floats go through their shortest decimal repr."""
    if type(value) is int:
        return value * scale
    if type(value) is float:
        exact = Decimal(repr(value))
    elif type(value) is Decimal:
        exact = value
    elif type(value) is str:
        try:
            exact = Decimal(value)
        except InvalidOperation:
            raise InvalidRecord(f"time {value!r} is not a number") from None
    else:
        raise InvalidRecord(f"a time must be a number, not {type(value).__name__}")
    # Reject non-finite and absurd magnitudes before scaling, so no context signal can fire
    # and no huge integer gets built.
    if not exact.is_finite() or exact.adjusted() > 20:
        raise InvalidRecord(f"time {value!r} is out of range")
    return int((exact * scale).to_integral_value(rounding=ROUND_HALF_EVEN))


def _checked(us: int) -> int:
    if not 0 <= us <= MAX_US:
        raise InvalidRecord(f"creation time {us} us is out of range")
    return us
