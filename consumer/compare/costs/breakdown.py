"""The result of costing one design: its lines, its total, its sizing and its caveats."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from consumer.compare.costs.prices import PriceSheet
from consumer.compare.costs.units import MILLION


class Design(StrEnum):
    """The designs compared; the value is the machine name used in JSON and the plot."""

    KINESIS_ON_DEMAND_EFO = "kinesis-on-demand-efo"
    KINESIS_ON_DEMAND_POLLING = "kinesis-on-demand-polling"
    KINESIS_PROVISIONED_EFO = "kinesis-provisioned-efo"
    KINESIS_PROVISIONED_POLLING = "kinesis-provisioned-polling"
    STREAMS_LAMBDA = "streams-lambda"

    @property
    def label(self) -> str:
        """The design's name for humans."""
        return _LABELS[self]


_LABELS = {
    Design.KINESIS_ON_DEMAND_EFO: "Kinesis on-demand, enhanced fan-out",
    Design.KINESIS_ON_DEMAND_POLLING: "Kinesis on-demand, shared polling",
    Design.KINESIS_PROVISIONED_EFO: "Kinesis provisioned, enhanced fan-out",
    Design.KINESIS_PROVISIONED_POLLING: "Kinesis provisioned, shared polling",
    Design.STREAMS_LAMBDA: "DynamoDB Streams + Lambda",
}


@dataclass(frozen=True)
class CostLine:
    """One component's monthly cost: `quantity` `unit`s at the price under `price_key`.

    `usd_per_month` is what the line adds to the total; `basis` says how it was computed,
    for humans (`2 tasks x 730 h x (0.25 vCPU x $0.04048 + 0.5 GB x $0.004445)`).
    """

    component: str
    usd_per_month: float
    quantity: float
    unit: str
    price_key: str
    basis: str


@dataclass(frozen=True)
class DesignCost:
    """A design's monthly cost. `viable` is False when the design cannot serve the scenario
    (the reason is in `notes`); such a design is shown but never ranked."""

    design: Design
    lines: tuple[CostLine, ...]
    sizing: tuple[tuple[str, float], ...]
    notes: tuple[str, ...] = ()
    viable: bool = True

    @property
    def total(self) -> float:
        return sum(line.usd_per_month for line in self.lines)


def priced(
    prices: PriceSheet,
    price_key: str,
    component: str,
    quantity: float,
    unit: str,
    basis: str,
    per_million: bool = False,
) -> CostLine:
    """`quantity` `unit`s at the price under `price_key` (per unit, or per million units);
    the basis ends with that price (` x $0.015`, per million ` x $0.1/M`)."""
    price = prices.price(price_key)
    per, suffix = (MILLION, "/M") if per_million else (1.0, "")
    basis = f"{basis} x {usd(price)}{suffix}"
    return CostLine(component, quantity / per * price, quantity, unit, price_key, basis)


def usd(value: float) -> str:
    """A unit price for a basis text: `$0.015`, `$0.0000166667`, `$0.625`."""
    text = f"{value:.10f}".rstrip("0").rstrip(".")
    return f"${text or '0'}"


def count(value: float) -> str:
    """A quantity for a basis text: whole numbers with separators, else 4 significant digits."""
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def rate(value: float) -> str:
    """A rate such as writes/day for humans: 3 significant digits with separators (336,000)."""
    rounded = float(f"{value:.3g}")
    return f"{rounded:,.0f}" if rounded >= 1 else f"{rounded:g}"
