"""The chaos suite's short form (`python -m consumer.chaos --short`) as part of `make test`:
worker processes under kill -9 and SIGTERM, a split and a merge, a replica-sink outage,
lease-table throttling, bridge duplicates and reordering, and poison records; every check
must pass. The full form runs on demand (`make chaos`)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

CHECKS = {
    "chaos_lost": r"chaos_lost 0",
    "chaos_mismatches": r"chaos_mismatches 0",
    "chaos_duplicates_on_planned_moves": r"chaos_duplicates_on_planned_moves 0",
    "chaos_poison_in_dlq": r"chaos_poison_in_dlq (\d+)/\1",
    "chaos_takeover_s_max": r"chaos_takeover_s_max \d+\.\d",
}


@pytest.mark.timeout(280)
def test_the_short_chaos_run_passes_every_check() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "consumer.chaos", "--short", "--seed", "20261127"],
        capture_output=True,
        text=True,
        timeout=270,
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
