"""The report as a text table (for people) or a JSON document (for machines)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from consumer.compare.latency.report import ConsumerBasis, LatencyReport, ModeLatency, SinkLatency

BASIS_TEXT = {
    ConsumerBasis.KINESIS_ARRIVAL: "apply - Kinesis arrival",
    ConsumerBasis.WRITE: "apply - write (the DynamoDB stream is read directly)",
}
HEADER_GROUPS = ("", "", "", "end to end", "consumer share", "upstream", "consumer added")
HEADER = (
    "mode", "sink", "n",
    "p50", "p90", "p99", "max",
    "p50", "p99",
    "p50", "p99",
    "p50", "p99",
)  # fmt: skip
# Columns per header group, so the group titles sit over their columns.
GROUP_SPANS = (1, 1, 1, 4, 2, 2, 2)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _row(mode: ModeLatency, sink: SinkLatency) -> list[str]:
    columns = (
        (sink.end_to_end, ("p50", "p90", "p99", "max")),
        (sink.consumer, ("p50", "p99")),
        (sink.upstream, ("p50", "p99")),
        (sink.consumer_added, ("p50", "p99")),
    )
    cells = [
        _ms(getattr(summary, name) if summary else None)
        for summary, names in columns
        for name in names
    ]
    return [mode.mode, sink.sink, f"{sink.applied}/{mode.probes}", *cells]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [list(HEADER), *rows]) for i in range(len(HEADER))]

    def line(cells: list[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    groups: list[str] = []
    column = 0
    for title, span in zip(HEADER_GROUPS, GROUP_SPANS, strict=True):
        width = sum(widths[column : column + span]) + 2 * (span - 1)
        groups.append(title.center(width) if title else " " * width)
        column += span
    return ["  ".join(groups).rstrip(), line(list(HEADER)), *(line(row) for row in rows)]


def render_text(report: LatencyReport) -> str:
    where = "local stack" if report.environment == "local" else "configured AWS endpoints"
    lines = [
        f"consumer compare latency: {where}, run {report.run_id}, {report.probes_per_mode} "
        f"probes per mode at {report.rate_per_s:g}/s",
        f"times in ms; percentiles: {report.percentile_method}; end to end = sink apply - "
        "probe write; upstream = Kinesis arrival - probe write; consumer added = sink apply - "
        "the consumer's read of the probe's batch off the socket",
    ]
    lines += [f"note: {note}" for note in report.notes]
    lines.append("")
    rows = [_row(mode, sink) for mode in report.modes for sink in mode.sinks]
    if rows:
        lines += _table(rows)
    lines.append("")
    for mode in report.modes:
        lines.append(f"{mode.mode}: consumer share = {BASIS_TEXT[mode.consumer_basis]}")
        lines += [f"{mode.mode}: problem: {problem}" for problem in mode.problems]
    lines.append(f"result: {'OK' if report.ok else 'INCOMPLETE'}")
    return "\n".join(lines) + "\n"


def _sink_data(sink: SinkLatency) -> dict[str, Any]:
    """The sink's fields in order, its summaries as dicts; `consumer_added` is named with its
    unit in the document."""
    data = dataclasses.asdict(sink)
    return {("consumer_added_ms" if key == "consumer_added" else key): data[key] for key in data}


def report_data(report: LatencyReport) -> dict[str, Any]:
    """The report as plain data (what `--json` prints)."""
    return {
        "environment": report.environment,
        "run_id": report.run_id,
        "probes_per_mode": report.probes_per_mode,
        "rate_per_s": report.rate_per_s,
        "percentile_method": report.percentile_method,
        "unit": "ms",
        "notes": list(report.notes),
        "ok": report.ok,
        "modes": [
            {
                "mode": mode.mode,
                "probes": mode.probes,
                "consumer_basis": str(mode.consumer_basis),
                "worker_exit": mode.worker_exit,
                "problems": list(mode.problems),
                "ok": mode.ok,
                "sinks": [_sink_data(sink) for sink in mode.sinks],
            }
            for mode in report.modes
        ],
    }


def render_json(report: LatencyReport) -> str:
    return json.dumps(report_data(report), indent=2) + "\n"
