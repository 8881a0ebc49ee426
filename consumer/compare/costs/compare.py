"""Cost every design, rank them, and find the write rates where their order changes
(docs/costs.md, "Ranking and crossovers"): a logarithmic grid of writes/day, bisected in log
space where the sign of (total A - total B) changes. Only viable designs are ranked or crossed,
at the scenario's rate and at each crossing."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

from consumer.compare.costs.breakdown import Design, DesignCost
from consumer.compare.costs.errors import CostInputError
from consumer.compare.costs.kinesis import on_demand_cost, provisioned_cost
from consumer.compare.costs.lambda_streams import streams_lambda_cost
from consumer.compare.costs.prices import PriceSheet
from consumer.compare.costs.scenario import MAX_WRITES_PER_DAY, Scenario

DesignModel = Callable[[Scenario, PriceSheet], DesignCost]

MODELS: dict[Design, DesignModel] = {
    Design.KINESIS_ON_DEMAND_EFO: lambda s, p: on_demand_cost(s, p, efo=True),
    Design.KINESIS_ON_DEMAND_POLLING: lambda s, p: on_demand_cost(s, p, efo=False),
    Design.KINESIS_PROVISIONED_EFO: lambda s, p: provisioned_cost(s, p, efo=True),
    Design.KINESIS_PROVISIONED_POLLING: lambda s, p: provisioned_cost(s, p, efo=False),
    Design.STREAMS_LAMBDA: streams_lambda_cost,
}

DEFAULT_SCAN_MIN = 1e3
DEFAULT_SCAN_MAX = 1e10
DEFAULT_POINTS_PER_DECADE = 24
_BISECT_STEPS = 60
_RELATIVE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ScanRange:
    """The writes/day interval scanned for crossovers."""

    low: float = DEFAULT_SCAN_MIN
    high: float = DEFAULT_SCAN_MAX
    points_per_decade: int = DEFAULT_POINTS_PER_DECADE

    def __post_init__(self) -> None:
        for name, value in (("scan_min", self.low), ("scan_max", self.high)):
            if not math.isfinite(value) or value <= 0:
                raise CostInputError(name, f"must be a finite number greater than 0, got {value:g}")
        if self.high > MAX_WRITES_PER_DAY:
            raise CostInputError(
                "scan_max", f"must be at most {MAX_WRITES_PER_DAY:g}, got {self.high:g}"
            )
        if self.high <= self.low:
            raise CostInputError("scan_max", f"must be greater than scan_min ({self.low:g})")
        if self.points_per_decade < 2:
            raise CostInputError("points_per_decade", "must be at least 2")

    def grid(self) -> list[float]:
        """Geometric grid from low to high inclusive."""
        decades = math.log10(self.high / self.low)
        steps = max(2, math.ceil(decades * self.points_per_decade))
        return [self.low * (self.high / self.low) ** (i / steps) for i in range(steps + 1)]


@dataclass(frozen=True)
class Crossover:
    """Below `writes_per_day`, `cheaper_below` costs less; above it, `cheaper_above` does."""

    writes_per_day: float
    cheaper_below: Design
    cheaper_above: Design
    usd_per_month: float


@dataclass(frozen=True)
class Comparison:
    """Every design costed at the scenario's rate, with the ranking and the crossovers."""

    scenario: Scenario
    prices: PriceSheet
    costs: tuple[DesignCost, ...]
    scan: ScanRange
    crossovers: tuple[Crossover, ...]
    cheapest_changes: tuple[Crossover, ...]

    @property
    def ranking(self) -> list[DesignCost]:
        """Viable designs, cheapest first."""
        return sorted((cost for cost in self.costs if cost.viable), key=lambda cost: cost.total)

    @property
    def cheapest(self) -> DesignCost | None:
        ranking = self.ranking
        return ranking[0] if ranking else None


def cost_all(scenario: Scenario, prices: PriceSheet) -> tuple[DesignCost, ...]:
    """Every design's monthly cost for `scenario`, in `Design` order."""
    return tuple(model(scenario, prices) for model in MODELS.values())


def _cost_at(design: Design, scenario: Scenario, prices: PriceSheet, writes: float) -> DesignCost:
    return MODELS[design](scenario.at_writes_per_day(writes), prices)


def total(design: Design, scenario: Scenario, prices: PriceSheet, writes_per_day: float) -> float:
    """`design`'s monthly total at another write rate."""
    return _cost_at(design, scenario, prices, writes_per_day).total


def _cheapest_viable(costs: dict[Design, DesignCost]) -> Design | None:
    viable = [cost for cost in costs.values() if cost.viable]
    return min(viable, key=lambda cost: cost.total).design if viable else None


def _bisect(
    first: Design, second: Design, scenario: Scenario, prices: PriceSheet, low: float, high: float
) -> Crossover:
    """The crossing of `first` and `second` in [low, high], where their order flips."""

    def difference(writes: float) -> float:
        return total(first, scenario, prices, writes) - total(second, scenario, prices, writes)

    low_sign = difference(low) > 0
    for _ in range(_BISECT_STEPS):
        if high / low <= 1 + _RELATIVE_TOLERANCE:
            break
        middle = math.sqrt(low * high)
        if (difference(middle) > 0) == low_sign:
            low = middle
        else:
            high = middle
    below, above = (second, first) if low_sign else (first, second)
    # Report the upper end: the first rate at which the new order holds (to the tolerance).
    return Crossover(high, below, above, total(above, scenario, prices, high))


def find_crossovers(
    scenario: Scenario, prices: PriceSheet, designs: list[Design], scan: ScanRange
) -> tuple[list[Crossover], list[Crossover]]:
    """Pairwise crossovers of `designs`, and the rates where the cheapest design changes."""
    grid = scan.grid()
    evaluated = [{d: _cost_at(d, scenario, prices, writes) for d in designs} for writes in grid]
    totals = [{design: cost.total for design, cost in row.items()} for row in evaluated]
    pairwise: list[Crossover] = []
    for first, second in combinations(designs, 2):
        last_index: int | None = None
        last_sign = 0.0
        for index, row in enumerate(totals):
            difference = row[first] - row[second]
            if difference == 0:
                continue
            sign = math.copysign(1.0, difference)
            if last_index is not None and sign != last_sign:
                pairwise.append(
                    _bisect(first, second, scenario, prices, grid[last_index], grid[index])
                )
            last_index, last_sign = index, sign
    # Viability can depend on the rate (Lambda's ParallelizationFactor): a crossing where
    # either design cannot serve that rate is no choice, and only viable designs lead.
    pairwise = [
        crossover
        for crossover in pairwise
        if _cost_at(crossover.cheaper_below, scenario, prices, crossover.writes_per_day).viable
        and _cost_at(crossover.cheaper_above, scenario, prices, crossover.writes_per_day).viable
    ]
    changes: list[Crossover] = []
    leaders = [_cheapest_viable(row) for row in evaluated]
    for index in range(1, len(grid)):
        before, after = leaders[index - 1], leaders[index]
        if before is not None and after is not None and before != after:
            changes.append(_bisect(before, after, scenario, prices, grid[index - 1], grid[index]))
    pairwise.sort(key=lambda crossover: crossover.writes_per_day)
    return pairwise, changes


def compare(scenario: Scenario, prices: PriceSheet, scan: ScanRange | None = None) -> Comparison:
    """Cost, rank and cross every design for `scenario` under `prices`."""
    scan = scan or ScanRange()
    costs = cost_all(scenario, prices)
    viable = [cost.design for cost in costs if cost.viable]
    crossovers, changes = (
        find_crossovers(scenario, prices, viable, scan) if len(viable) > 1 else ([], [])
    )
    return Comparison(
        scenario=scenario,
        prices=prices,
        costs=costs,
        scan=scan,
        crossovers=tuple(crossovers),
        cheapest_changes=tuple(changes),
    )
