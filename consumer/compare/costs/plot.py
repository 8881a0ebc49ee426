"""`--plot FILE.png`: monthly cost against writes/day, log axes, one curve per design, the
crossovers marked. matplotlib is optional: it is imported here, on use, and its absence is one
clear error."""

from __future__ import annotations

from pathlib import Path

from consumer.compare.costs.breakdown import rate
from consumer.compare.costs.compare import Comparison, ScanRange, total
from consumer.compare.costs.errors import CostError

PLOT_POINTS_PER_DECADE = 48


class PlotError(CostError):
    """The plot cannot be drawn (matplotlib missing) or written."""


def plot_comparison(comparison: Comparison, path: str | Path) -> None:
    """Draw every design's total over the comparison's scan range into a PNG at `path`.

    Viable designs are solid lines, others dotted; every pairwise crossover is a dot, changes
    of the cheapest design are labelled, and the scenario's own rate is a vertical line.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise PlotError(f"cannot write plot {path}: no directory {target.parent}")
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError("--plot needs matplotlib: pip install matplotlib") from None

    scenario, prices = comparison.scenario, comparison.prices
    scan = comparison.scan
    grid = ScanRange(scan.low, scan.high, PLOT_POINTS_PER_DECADE).grid()
    figure = Figure(figsize=(10, 6.5), layout="constrained")
    axes = figure.add_subplot()
    axes.set_xscale("log")
    axes.set_yscale("log")
    colours: dict[str, str] = {}
    for index, cost in enumerate(comparison.costs):
        totals = [total(cost.design, scenario, prices, writes) for writes in grid]
        label = cost.design.label if cost.viable else f"{cost.design.label} (not viable)"
        colours[cost.design.value] = f"C{index}"  # the default colour cycle, in design order
        axes.plot(
            grid,
            totals,
            label=label,
            color=colours[cost.design.value],
            linestyle="-" if cost.viable else ":",
            linewidth=1.6,
        )
    for crossover in comparison.crossovers:
        axes.plot(
            [crossover.writes_per_day],
            [crossover.usd_per_month],
            marker="o",
            markersize=5,
            color=colours[crossover.cheaper_above.value],
            markeredgecolor="black",
            linestyle="none",
        )
    for change in comparison.cheapest_changes:
        axes.annotate(
            f"{rate(change.writes_per_day)}/day",
            xy=(change.writes_per_day, change.usd_per_month),
            xytext=(0, 18),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            arrowprops={"arrowstyle": "-", "color": "grey"},
        )
    axes.axvline(
        scenario.workload.writes_per_day,
        color="grey",
        linestyle="--",
        linewidth=1,
        label="this scenario",
    )
    workload = scenario.workload
    axes.set_title(
        f"Monthly cost, {prices.region}: item {workload.item_kb:g} KB, "
        f"{workload.consumers} consumer(s), retention {workload.retention_days:g} d, "
        f"updates {workload.update_share:.0%}"
    )
    axes.set_xlabel("writes per day")
    axes.set_ylabel("USD per month")
    axes.grid(True, which="both", linewidth=0.3)
    axes.legend(fontsize=8, loc="upper left")
    try:
        figure.savefig(target, format="png", dpi=110)
    except OSError as error:
        raise PlotError(f"cannot write plot {path}: {error.strerror or error}") from None
