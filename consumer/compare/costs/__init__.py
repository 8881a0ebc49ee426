"""Monthly cost of consuming a DynamoDB table's changes: this project's Kinesis designs
against DynamoDB Streams + Lambda.

    prices = load_region("us-east-1")                # or load_price_file(path)
    scenario = Scenario(Workload(writes_per_day=10_000_000, item_kb=2))
    comparison = compare(scenario, prices)           # every design, ranking, crossovers
    print(render_text(comparison, "us-east-1.json"))

Pure functions of (scenario, prices): no I/O but loading the price file and writing a plot.
Every formula is in docs/costs.md; each module's docstring states its own.
"""

from consumer.compare.costs.breakdown import CostLine, Design, DesignCost
from consumer.compare.costs.compare import Comparison, Crossover, ScanRange, compare, cost_all
from consumer.compare.costs.errors import (
    CostError,
    CostInputError,
    PriceFileError,
    UnknownRegionError,
)
from consumer.compare.costs.prices import (
    DEFAULT_REGION,
    PriceSheet,
    known_regions,
    load_price_file,
    load_region,
)
from consumer.compare.costs.render import render_json, render_text, to_json_document
from consumer.compare.costs.scenario import (
    LambdaSizing,
    RecordShape,
    Scenario,
    ServiceSizing,
    Workload,
)

__all__ = [
    "DEFAULT_REGION",
    "Comparison",
    "CostError",
    "CostInputError",
    "CostLine",
    "Crossover",
    "Design",
    "DesignCost",
    "LambdaSizing",
    "PriceFileError",
    "PriceSheet",
    "RecordShape",
    "ScanRange",
    "Scenario",
    "ServiceSizing",
    "UnknownRegionError",
    "Workload",
    "compare",
    "cost_all",
    "known_regions",
    "load_price_file",
    "load_region",
    "render_json",
    "render_text",
    "to_json_document",
]
