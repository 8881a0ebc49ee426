"""`consumer compare ACTION`: compare this service with the DynamoDB Streams + Lambda design.

Actions: `cost` (here) prints a monthly cost table per design, the cheapest, and the write rates
where the ranking changes; formulas and defaults are in docs/costs.md. `latency` lives in
compare_latency_cmd.

Exit status of `compare cost`: 0 on success; 2 on bad input (one line on stderr naming the
option, the price key or the file); 1 when the report was printed but the plot failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from consumer.cli import compare_latency_cmd
from consumer.compare.costs.compare import DEFAULT_SCAN_MAX, DEFAULT_SCAN_MIN, ScanRange, compare
from consumer.compare.costs.errors import CostError, CostInputError, PriceFileError
from consumer.compare.costs.prices import DEFAULT_REGION, PriceSheet, load_price_file, load_region
from consumer.compare.costs.render import render_json, render_text
from consumer.compare.costs.scenario import (
    LambdaSizing,
    RecordShape,
    Scenario,
    ServiceSizing,
    Workload,
)

if TYPE_CHECKING:
    Actions = argparse._SubParsersAction[argparse.ArgumentParser]

PROG = "consumer compare cost"


def register(subcommands: Actions) -> None:
    """Add `compare` and its actions to the top-level command parser."""
    parser = subcommands.add_parser(
        "compare",
        help="compare cost (and latency) with the DynamoDB Streams + Lambda design",
        description=(
            "Compare this service (Kinesis destination + consumer on Fargate) with the "
            "DynamoDB Streams + Lambda design."
        ),
    )
    actions = parser.add_subparsers(dest="compare_action", metavar="ACTION")
    parser.set_defaults(handler=_usage(parser))
    register_cost(actions)
    compare_latency_cmd.register_action(actions)


def _usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def handler(_: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return handler


def _option(
    group: argparse._ArgumentGroup, cls: type[Any], name: str, help_text: str, metavar: str
) -> None:
    """An option whose value is parsed in the handler (so errors are one line) and whose
    default is the model's."""
    default = next(field.default for field in dataclasses.fields(cls) if field.name == name)
    shown = "estimated" if default is None else f"{default:g}"
    group.add_argument(
        "--" + name.replace("_", "-"),
        dest=name,
        default=None,
        metavar=metavar,
        help=f"{help_text} (default: {shown})",
    )


def register_cost(actions: Actions) -> None:
    """Add `compare cost`."""
    parser = actions.add_parser(
        "cost",
        help="monthly cost per design, the cheapest, and where the ranking changes",
        description=(
            "Monthly cost (730 h) of consuming a DynamoDB table's changes: Kinesis on-demand "
            "and provisioned, each with enhanced fan-out and with shared polling, consumed by "
            "this service on Fargate; against DynamoDB Streams + Lambda (with an SNS/SQS "
            "fan-out beyond 2 consumers). Formulas: docs/costs.md."
        ),
    )
    workload = parser.add_argument_group("workload")
    workload.add_argument(
        "--writes-per-day",
        dest="writes_per_day",
        required=True,
        metavar="N",
        help="table writes (inserts + updates + deletes) per day, on average; e.g. 1e7",
    )
    workload.add_argument(
        "--item-kb",
        dest="item_kb",
        required=True,
        metavar="K",
        help="item size in KB (1,024 bytes), as DynamoDB counts it",
    )
    _option(workload, Workload, "update_share", "share of writes that are updates, 0-1", "U")
    _option(workload, Workload, "consumers", "independent consuming applications", "C")
    _option(workload, Workload, "retention_days", "Kinesis retention in days, 1-365", "D")
    _option(workload, Workload, "peak_factor", "peak / average write rate", "F")
    _option(workload, Workload, "table_gb", "table size for the partition estimate", "GB")

    records = parser.add_argument_group("record size")
    _option(records, RecordShape, "json_overhead", "DynamoDB-JSON size / item size", "X")
    _option(records, RecordShape, "envelope_bytes", "record bytes besides the images", "B")

    service = parser.add_argument_group("consumer service (Kinesis designs)")
    _option(service, ServiceSizing, "task_records_per_s", "records/s one task carries", "R")
    _option(service, ServiceSizing, "task_vcpu", "Fargate task vCPU", "V")
    _option(service, ServiceSizing, "task_memory_gb", "Fargate task memory", "GB")
    _option(service, ServiceSizing, "min_tasks", "tasks per consumer at least", "N")
    _option(service, Scenario, "failure_rate", "share of records parked in the DLQ", "P")

    lambdas = parser.add_argument_group("DynamoDB Streams + Lambda")
    _option(lambdas, LambdaSizing, "batch_size", "event source mapping BatchSize", "N")
    _option(lambdas, LambdaSizing, "lambda_memory_mb", "function memory", "MB")
    _option(lambdas, LambdaSizing, "lambda_batch_ms", "billed ms per invocation", "MS")
    _option(lambdas, LambdaSizing, "lambda_record_ms", "billed ms per record, added", "MS")
    _option(lambdas, LambdaSizing, "dispatcher_ms", "billed ms per fan-out dispatch", "MS")
    _option(lambdas, LambdaSizing, "stream_shards", "DynamoDB stream shards", "N")

    pricing = parser.add_argument_group("prices")
    pricing.add_argument(
        "--region",
        default=None,
        metavar="R",
        help=f"packaged price file to use (default: {DEFAULT_REGION})",
    )
    pricing.add_argument(
        "--prices",
        default=None,
        metavar="FILE",
        help="your own price file (JSON, the packaged files' format; see docs/costs.md)",
    )

    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print JSON instead of tables")
    output.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="also draw cost against writes/day, log axes (needs matplotlib)",
    )
    output.add_argument(
        "--scan-min",
        dest="scan_min",
        default=None,
        metavar="N",
        help=f"lowest writes/day scanned for crossovers (default: {DEFAULT_SCAN_MIN:g})",
    )
    output.add_argument(
        "--scan-max",
        dest="scan_max",
        default=None,
        metavar="N",
        help=f"highest writes/day scanned for crossovers (default: {DEFAULT_SCAN_MAX:g})",
    )
    parser.set_defaults(handler=run_cost)


# --- argument conversion: one clear line per bad value ------------------------------------

INTEGER_OPTIONS = frozenset(
    {"consumers", "min_tasks", "batch_size", "lambda_memory_mb", "stream_shards"}
)


def _convert(name: str, text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise CostInputError(name, f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise CostInputError(name, f"must be a finite number, got {text!r}")
    if name in INTEGER_OPTIONS:
        if value != int(value):
            raise CostInputError(name, f"must be a whole number, got {text!r}")
        return int(value)
    return value


def _values(args: argparse.Namespace, cls: type[Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        text = getattr(args, field.name, None)
        if isinstance(text, str):
            values[field.name] = _convert(field.name, text)
    return values


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    """Build and validate the scenario; raises CostInputError naming the option."""
    return Scenario(
        workload=Workload(**_values(args, Workload)),
        records=RecordShape(**_values(args, RecordShape)),
        service=ServiceSizing(**_values(args, ServiceSizing)),
        lambdas=LambdaSizing(**_values(args, LambdaSizing)),
        **_values(args, Scenario),
    )


def prices_from_args(args: argparse.Namespace) -> tuple[PriceSheet, str]:
    """The price sheet to use and how to name it in the report."""
    if args.prices is not None:
        sheet = load_price_file(args.prices)
        if args.region is not None and args.region != sheet.region:
            raise PriceFileError(
                f"--region {args.region} does not match price file {args.prices}, "
                f"which is for {sheet.region}"
            )
        return sheet, args.prices
    region = args.region or DEFAULT_REGION
    return load_region(region), f"packaged {region}.json"


def scan_from_args(args: argparse.Namespace) -> ScanRange:
    low = DEFAULT_SCAN_MIN if args.scan_min is None else _convert("scan_min", args.scan_min)
    high = DEFAULT_SCAN_MAX if args.scan_max is None else _convert("scan_max", args.scan_max)
    return ScanRange(float(low), float(high))


def run_cost(args: argparse.Namespace) -> int:
    """Handler of `compare cost`."""
    try:
        scenario = scenario_from_args(args)
        scan = scan_from_args(args)
        prices, origin = prices_from_args(args)
    except CostInputError as error:
        print(f"{PROG}: {error.option} {error.problem}", file=sys.stderr)
        return 2
    except CostError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    comparison = compare(scenario, prices, scan)
    report = render_json(comparison, origin) if args.json else render_text(comparison, origin)
    sys.stdout.write(report)
    sys.stdout.flush()
    if args.plot is not None:
        from consumer.compare.costs.plot import plot_comparison

        try:
            plot_comparison(comparison, args.plot)
        except CostError as error:
            print(f"{PROG}: {error}", file=sys.stderr)
            return 1
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0
