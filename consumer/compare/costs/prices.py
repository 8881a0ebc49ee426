"""Price sheets: one JSON file per region (`consumer/data/prices/us-east-1.json`; the format is
in docs/costs.md, "Price files"), every number with its unit, source and date.

The unit of each key is fixed (`PRICE_UNITS`): the formulas depend on it, so a file that prices
GB where the model expects millions of requests is rejected rather than silently mis-scaled.
Loading either returns a complete, validated `PriceSheet` or raises one `PriceFileError` whose
message names the file and the first offending key (`prices.kinesis_shard_hour.value: ...`).
"""

from __future__ import annotations

import math
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from consumer.compare.costs.errors import PriceFileError, UnknownRegionError

DEFAULT_REGION = "us-east-1"
_PACKAGE = "consumer"
_PRICES_DIR = ("data", "prices")


class Price(BaseModel):
    """One price: a non-negative finite number, its unit, where it was read and when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: float = Field(ge=0, allow_inf_nan=False)
    unit: str = Field(min_length=1)
    source: str
    as_of: date
    unverified: bool = False
    note: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        # JSON true/false would otherwise pass as 1/0, and numeric strings as numbers.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        return value

    @field_validator("source")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be the URL of the pricing page the number was read from")
        return value


def _in(unit: str) -> Any:
    """A required price whose unit must be `unit`."""
    return Field(description=unit)


class Prices(BaseModel):
    """Every price the model uses, each with the unit its value must be in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kinesis_on_demand_stream_hour: Price = _in("USD per stream-hour")
    kinesis_on_demand_ingest_gb: Price = _in("USD per GB")
    kinesis_on_demand_read_gb: Price = _in("USD per GB")
    kinesis_on_demand_efo_read_gb: Price = _in("USD per GB")
    kinesis_on_demand_retention_7d_gb_month: Price = _in("USD per GB-month")
    kinesis_on_demand_retention_long_gb_month: Price = _in("USD per GB-month")
    kinesis_shard_hour: Price = _in("USD per shard-hour")
    kinesis_put_payload_units_million: Price = _in("USD per million PUT payload units")
    kinesis_extended_retention_shard_hour: Price = _in("USD per shard-hour")
    kinesis_long_term_retention_gb_month: Price = _in("USD per GB-month")
    kinesis_efo_consumer_shard_hour: Price = _in("USD per consumer-shard-hour")
    kinesis_efo_read_gb: Price = _in("USD per GB")
    dynamodb_cdc_units_million: Price = _in("USD per million change data capture units")
    dynamodb_streams_reads_100k: Price = _in("USD per 100,000 read request units")
    dynamodb_on_demand_writes_million: Price = _in("USD per million write request units")
    dynamodb_on_demand_reads_million: Price = _in("USD per million read request units")
    dynamodb_export_gb: Price = _in("USD per GB")
    lambda_requests_million: Price = _in("USD per million requests")
    lambda_gb_second: Price = _in("USD per GB-second")
    fargate_vcpu_hour: Price = _in("USD per vCPU-hour")
    fargate_gb_hour: Price = _in("USD per GB-hour")
    sqs_requests_million: Price = _in("USD per million requests")
    sns_publishes_million: Price = _in("USD per million requests")

    @field_validator("*")
    @classmethod
    def _unit(cls, price: Price, info: ValidationInfo) -> Price:
        expected = PRICE_UNITS[info.field_name or ""]
        if price.unit != expected:
            raise ValueError(f"unit must be {expected!r}, got {price.unit!r}")
        return price


# Each key the model uses and the unit its value must be in.
PRICE_UNITS = {name: str(field.description) for name, field in Prices.model_fields.items()}


class PriceSheet(BaseModel):
    """A region's price file, validated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: str = Field(min_length=1)
    currency: Literal["USD"]
    description: str | None = None
    prices: Prices

    def price(self, key: str) -> float:
        """The value of the price under `key` (a `PRICE_UNITS` key)."""
        value: float = getattr(self.prices, key).value
        return value

    def unverified(self) -> list[str]:
        """Keys whose price the file marks `unverified`, in file order."""
        return [name for name in PRICE_UNITS if getattr(self.prices, name).unverified]


def _first_error(error: ValidationError) -> str:
    details = error.errors()
    first = details[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "missing":
        message = "missing key"
    elif first["type"] == "extra_forbidden":
        message = "unknown key"
    others = len(details) - 1
    more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
    return f"{where}: {message}{more}"


def parse_price_sheet(data: bytes, origin: str) -> PriceSheet:
    """Parse and validate a price file's bytes; `origin` names it in errors."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise PriceFileError(f"price file {origin} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise PriceFileError(f"price file {origin}: expected a JSON object at the top level")
    try:
        sheet = PriceSheet.model_validate(document)
    except ValidationError as error:
        raise PriceFileError(f"price file {origin}: {_first_error(error)}") from None
    for name in PRICE_UNITS:
        if not math.isfinite(getattr(sheet.prices, name).value):  # belt and braces
            raise PriceFileError(f"price file {origin}: prices.{name}.value: must be finite")
    return sheet


def load_price_file(path: str | Path) -> PriceSheet:
    """Load a user's price file (`--prices FILE`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise PriceFileError(f"cannot read price file {path}: {error.strerror or error}") from None
    return parse_price_sheet(data, str(path))


def known_regions() -> list[str]:
    """Regions with a packaged price file, sorted."""
    directory = resources.files(_PACKAGE).joinpath(*_PRICES_DIR)
    return sorted(
        entry.name.removesuffix(".json")
        for entry in directory.iterdir()
        if entry.name.endswith(".json")
    )


def load_region(region: str) -> PriceSheet:
    """Load the packaged price file of `region`; unknown regions list the known ones."""
    regions = known_regions()
    if region not in regions:
        raise UnknownRegionError(
            f"no packaged prices for region {region!r}; known regions: {', '.join(regions)} "
            "(or pass --prices FILE with your own)"
        )
    resource = resources.files(_PACKAGE).joinpath(*_PRICES_DIR, f"{region}.json")
    sheet = parse_price_sheet(resource.read_bytes(), f"{region}.json (packaged)")
    if sheet.region != region:
        raise PriceFileError(f"packaged price file {region}.json says region {sheet.region!r}")
    return sheet
