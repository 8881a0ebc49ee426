"""The verify metric: one CloudWatch embedded-metric-format line per run, `VerifyDifferences`
per pipeline (differences left at the end, after a repair if one ran), for an alarm on > 0.
Same namespace and Application dimension as the service's metrics
(`consumer.telemetry.metrics`); no PutMetricData call and no agent: the awslogs driver
turns the line into the metric."""

from __future__ import annotations

from typing import Any

import orjson

from consumer.verify.model import VerifyReport

METRIC = "VerifyDifferences"


def emf_lines(namespace: str, application: str, now_ms: int, report: VerifyReport) -> list[bytes]:
    lines = []
    for name, tally in report.pipelines.items():
        remaining = (
            report.after_repair.get(name, 0)
            if report.after_repair is not None
            else tally.differences
        )
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": now_ms,
                "CloudWatchMetrics": [
                    {
                        "Namespace": namespace,
                        "Dimensions": [["Application"], ["Application", "Pipeline"]],
                        "Metrics": [
                            {"Name": METRIC, "Unit": "Count"},
                            {"Name": "VerifyUnsettled", "Unit": "Count"},
                        ],
                    }
                ],
            },
            "Application": application,
            "Pipeline": name,
            METRIC: remaining,
            "VerifyUnsettled": tally.unsettled,
            "Table": report.table,
        }
        lines.append(orjson.dumps(document))
    return lines
