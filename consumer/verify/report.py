"""The verify report: a table for people, JSON (`--json`) for scripts. Keys only, never item
contents (key values are escaped for the terminal)."""

from __future__ import annotations

from typing import Any

import orjson

from consumer.cli.terminal import json_safe
from consumer.verify.model import DIFFERENCES, Kind, VerifyReport


def as_json(report: VerifyReport) -> str:
    document: dict[str, Any] = {
        "table": report.table,
        "snapshot": report.snapshot_id,
        "ok": report.remaining == 0,
        "items_read": report.items_read,
        "sample": report.sampled,
        "recheck_after_s": round(report.recheck_after_s, 1),
        "elapsed_s": round(report.elapsed_s, 1),
        "pipelines": {
            name: {
                **{kind.value: tally.counts[kind] for kind in Kind},
                "unsettled": tally.unsettled,
                "not_compared": tally.not_compared,
                "first": {kind.value: tally.first[kind] for kind in DIFFERENCES},
                **(
                    {"repaired": tally.repaired, "not_repaired": tally.not_repaired}
                    if report.after_repair is not None
                    else {}
                ),
            }
            for name, tally in report.pipelines.items()
        },
        "notes": report.notes,
    }
    if report.after_repair is not None:
        document["after_repair"] = report.after_repair
    return json_safe(orjson.dumps(document).decode())


def as_table(report: VerifyReport) -> list[str]:
    lines = [
        f"{'pipeline':<12} {'equal':>9} {'missing':>9} {'stale':>9} {'extra':>9} {'unsettled':>9}"
    ]
    for name, tally in report.pipelines.items():
        counts = tally.counts
        lines.append(
            f"{name:<12} {counts[Kind.EQUAL]:>9} {counts[Kind.MISSING]:>9} "
            f"{counts[Kind.STALE]:>9} {counts[Kind.EXTRA]:>9} {tally.unsettled:>9}"
        )
    for name, tally in report.pipelines.items():
        for kind in DIFFERENCES:
            keys = tally.first[kind]
            if keys:
                more = tally.counts[kind] - len(keys)
                tail = f" (+{more} more)" if more > 0 else ""
                lines.append(f"{name} {kind.value}: {'; '.join(keys)}{tail}")
        if tally.not_compared:
            lines.append(f"{name}: {tally.not_compared} items left out by its filters")
        if report.after_repair is not None:
            lines.append(f"{name}: repaired {tally.repaired}")
            lines.extend(f"{name}: not repaired: {line}" for line in tally.not_repaired)
    lines.extend(f"note: {note}" for note in report.notes)
    state = "OK" if report.remaining == 0 else "DIFFERENCES"
    after = ""
    if report.after_repair is not None:
        after = f" after_repair={sum(report.after_repair.values())}"
    lines.append(
        f"verify: {state} table={report.table} items={report.items_read} "
        f"differences={report.differences}{after} sample={report.sampled:g} "
        f"recheck_after_s={report.recheck_after_s:.0f} ({report.elapsed_s:.1f} s)"
    )
    return lines
