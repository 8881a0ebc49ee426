"""Turn a `Comparison` into the text report or the JSON document `consumer compare cost` prints
(all money in USD per month; the document holds the same as the report, see
`to_json_document`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson

from consumer.compare.costs.breakdown import DesignCost, count, rate
from consumer.compare.costs.compare import Comparison, Crossover
from consumer.compare.costs.traffic import traffic_of

JsonObject = dict[str, Any]
AMOUNT_WIDTH = 11
COMPONENT_WIDTH = 30


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _design_block(cost: DesignCost) -> list[str]:
    sizing = ", ".join(f"{name} {count(round(value, 2))}" for name, value in cost.sizing)
    status = "" if cost.viable else "  (NOT VIABLE)"
    lines = [f"{cost.design.label}{status}  [{sizing}]"]
    lines.append(f"  {'component':<{COMPONENT_WIDTH}}{'USD/month':>{AMOUNT_WIDTH}}  basis")
    for line in cost.lines:
        amount = f"{line.usd_per_month:,.2f}"
        lines.append(f"  {line.component:<{COMPONENT_WIDTH}}{amount:>{AMOUNT_WIDTH}}  {line.basis}")
    lines.append(f"  {'total':<{COMPONENT_WIDTH}}{cost.total:>{AMOUNT_WIDTH},.2f}")
    lines += [f"  note: {note}" for note in cost.notes]
    return lines


def _crossover_text(crossover: Crossover) -> str:
    return (
        f"  at {rate(crossover.writes_per_day):>15} writes/day: "
        f"{crossover.cheaper_above.label} becomes cheaper than {crossover.cheaper_below.label} "
        f"(~{_money(crossover.usd_per_month)}/month)"
    )


def render_text(comparison: Comparison, prices_origin: str) -> str:
    """The human report: workload, one table per design, ranking, crossovers, caveats."""
    scenario = comparison.scenario
    workload = scenario.workload
    traffic = traffic_of(scenario)
    out = [
        f"Monthly cost (730 h), {comparison.prices.region}, prices: {prices_origin}",
        (
            f"Workload: {rate(workload.writes_per_day)} writes/day = "
            f"{traffic.writes_per_s:,.1f}/s average, {traffic.peak_writes_per_s:,.1f}/s peak "
            f"(x{workload.peak_factor:g}); item {workload.item_kb:g} KB; "
            f"updates {workload.update_share:.0%}; {workload.consumers} consumer(s); "
            f"retention {workload.retention_days:g} day(s)"
        ),
        (
            f"Records: {traffic.one_image_record_bytes:,.0f} B with one image (insert, delete), "
            f"{traffic.two_image_record_bytes:,.0f} B with both (update), mean "
            f"{traffic.mean_record_bytes:,.0f} B; {traffic.cdc_units_per_write} change data "
            "capture unit(s) per write"
        ),
        "",
    ]
    for cost in comparison.costs:
        out += _design_block(cost)
        out.append("")
    ranking = comparison.ranking
    if ranking:
        best = ranking[0]
        others = ", ".join(f"{cost.design.label} {_money(cost.total)}" for cost in ranking[1:])
        out.append(f"Cheapest: {best.design.label} at {_money(best.total)}/month")
        if others:
            out.append(f"  then: {others}")
    else:
        out.append("Cheapest: none of the designs is viable for this scenario")
    scan = comparison.scan
    span = f"{rate(scan.low)} to {rate(scan.high)} writes/day"
    if comparison.cheapest_changes:
        out.append(f"Cheapest design changes ({span}):")
        out += [_crossover_text(change) for change in comparison.cheapest_changes]
    else:
        out.append(f"Cheapest design changes: none from {span}")
    if comparison.crossovers:
        out.append("All crossovers between pairs of designs:")
        out += [_crossover_text(crossover) for crossover in comparison.crossovers]
    unverified = comparison.prices.unverified()
    if unverified:
        out.append(f"Unverified prices used (re-check them): {', '.join(unverified)}")
    return "\n".join(out) + "\n"


def to_json_document(comparison: Comparison, prices_origin: str) -> JsonObject:
    """The machine-readable report (see the module docstring for its shape)."""
    scenario = comparison.scenario
    traffic = traffic_of(scenario)
    cheapest = comparison.cheapest
    return {
        "region": comparison.prices.region,
        "prices": {
            "origin": prices_origin,
            "region": comparison.prices.region,
            "description": comparison.prices.description,
            "unverified": comparison.prices.unverified(),
        },
        "inputs": {
            **asdict(scenario.workload),
            **asdict(scenario.records),
            **asdict(scenario.service),
            **asdict(scenario.lambdas),
            "failure_rate": scenario.failure_rate,
        },
        "records": {
            "one_image_bytes": traffic.one_image_record_bytes,
            "two_image_bytes": traffic.two_image_record_bytes,
            "mean_bytes": traffic.mean_record_bytes,
            "cdc_units_per_write": traffic.cdc_units_per_write,
        },
        "designs": [
            {
                "design": cost.design.value,
                "title": cost.design.label,
                "viable": cost.viable,
                "total_usd_per_month": cost.total,
                "sizing": dict(cost.sizing),
                "notes": list(cost.notes),
                "lines": [asdict(line) for line in cost.lines],
            }
            for cost in comparison.costs
        ],
        "ranking": [cost.design.value for cost in comparison.ranking],
        "cheapest": cheapest.design.value if cheapest else None,
        "scan": {
            "writes_per_day_min": comparison.scan.low,
            "writes_per_day_max": comparison.scan.high,
            "points_per_decade": comparison.scan.points_per_decade,
        },
        "crossovers": [asdict(crossover) for crossover in comparison.crossovers],
        "cheapest_changes": [asdict(change) for change in comparison.cheapest_changes],
    }


def render_json(comparison: Comparison, prices_origin: str) -> str:
    """`to_json_document` as indented JSON text with a trailing newline."""
    document = to_json_document(comparison, prices_origin)
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
