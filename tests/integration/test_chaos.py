"""The chaos suite's short form (`python -m tests.chaos --short`) as part of `make test`:
worker processes under kill -9, SIGTERM and SIGSTOP (past the failover time, then resumed),
a worker started with a replica table that does not exist, an event-loop stall inside a sink
write, a split and a merge, a replica-sink outage, lease-table throttling, bridge duplicates
and reordering, poison records, and good and poison changes of one key in one batch; every
check must pass (issue 15: no good change parked, no replica write after the worker's lease
was superseded in the lease table, the misconfigured worker fails alone and takes no lease).
The items the run writes carry a log canary (tests/chaos/canary.py) and the workers log at
DEBUG: no line any worker wrote, nor the run's own output, may hold it (issue 16, DESIGN.md
invariant 6: nothing logs item contents), through kills, takeovers, outages and poison.
The time until records flow again after a kill is reported here and enforced by the full
form (`make chaos`, EFO and polling)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chaos.canary import CANARY_ENV, CANARY_NUMBER

pytestmark = pytest.mark.integration

CHECKS = {
    "chaos_lost": r"chaos_lost 0",
    "chaos_mismatches": r"chaos_mismatches 0",
    "chaos_duplicates_on_planned_moves": r"chaos_duplicates_on_planned_moves 0",
    "chaos_poison_in_dlq": r"chaos_poison_in_dlq (\d+)/\1",
    "chaos_takeover_s_max": r"chaos_takeover_s_max \d+\.\d",
    "chaos_wrongly_parked": r"chaos_wrongly_parked 0",
    "chaos_processing_without_lease": r"chaos_processing_without_lease 0",
    "chaos_takeover_processing_s_max": r"chaos_takeover_processing_s_max \d+\.\d",
    "chaos_misconfigured_workers_failing": r"chaos_misconfigured_workers_failing 0",
    "chaos_mixed_newest_good_skipped": r"chaos_mixed_newest_good_skipped 0",
}
CHAOS_SHORT = [sys.executable, "-m", "tests.chaos", "--short", "--seed", "20261127"]
CANARY = "ch4oscanary"
CANARIES = (CANARY, CANARY_NUMBER)


def canary_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(c in line for c in CANARIES)]


@pytest.mark.timeout(300)
def test_the_short_chaos_run_passes_every_check(tmp_path: Path) -> None:
    completed = subprocess.run(
        [*CHAOS_SHORT, "--keep-dir", str(tmp_path)],
        env={**os.environ, CANARY_ENV: CANARY},
        capture_output=True,
        text=True,
        timeout=290,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    lines = set(output.splitlines())
    for name, pattern in CHECKS.items():
        assert any(re.fullmatch(pattern, line) for line in lines), f"{name}: {output[-4000:]}"
    poison = re.search(r"^chaos_poison_in_dlq (\d+)/(\d+)$", output, re.MULTILINE)
    assert poison is not None and int(poison.group(2)) > 0
    takeover = re.search(r"^chaos_takeover_s_max (\S+)$", output, re.MULTILINE)
    assert takeover is not None and float(takeover.group(1)) > 0, "no takeover was measured"
    flowing = re.search(r"^chaos_takeover_processing_s_max (\S+)$", output, re.MULTILINE)
    assert flowing is not None and float(flowing.group(1)) > 0, "no flow after a kill measured"
    # The misconfigured worker's one line names the setting.
    assert re.search(r"failed in .*pipelines\.replication\.table", output), output[-4000:]
    assert_no_canary_in_any_log(tmp_path / "polling", output)


def assert_no_canary_in_any_log(work_dir: Path, output: str) -> None:
    """Every worker's log (stdout and stderr), at DEBUG, and the run's own output."""
    logs = sorted((work_dir / "workers").glob("*.log"))
    assert len(logs) >= 3, logs
    texts = {log.name: log.read_text(errors="replace") for log in logs}
    assert any('"level": "debug"' in text for text in texts.values()), "DEBUG was not on"
    leaked = {name: canary_lines(text)[:3] for name, text in texts.items() if canary_lines(text)}
    assert leaked == {}, leaked
    assert canary_lines(output) == [], canary_lines(output)[:3]
    # The canary was in the data: the workers delivered items carrying it.
    deliveries = "".join(p.read_text() for p in (work_dir / "deliveries").glob("deliveries-*"))
    assert CANARY in deliveries
