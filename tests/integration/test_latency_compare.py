"""`consumer compare latency` end to end on the local stack: every mode measures every sink,
the numbers are consistent (not fast: emulator speeds say nothing about AWS), and the command
prints its table with the emulator caveat.

Sanity, per mode and sink: every probe applied; p50 <= p90 <= p99 <= max; the consumer's share
at most the end-to-end time at every percentile (it is per probe, and order statistics keep
that); the upstream share (the local bridge) present exactly for the Kinesis modes; the
consumer's own added time (read off the socket to apply, issue 19) present for every probe,
above zero and at most the end-to-end time at every percentile (the batch is read after the
probe was written).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from consumer.compare.latency.local_env import LocalEnvironment
from consumer.compare.latency.percentiles import Summary
from consumer.compare.latency.report import ConsumerBasis
from consumer.compare.latency.runner import RunOptions, measure_latency
from consumer.compare.latency.session import SessionOptions
from consumer.local.stack import LocalStackState

pytestmark = pytest.mark.integration

PROBES = 20


def ordered(summary: Summary | None) -> Summary:
    assert summary is not None
    assert summary.p50 <= summary.p90 <= summary.p99 <= summary.max
    return summary


def test_every_mode_measures_every_sink(local_stack: LocalStackState, tmp_path: Path) -> None:
    environment = LocalEnvironment(local_stack, tmp_path)
    options = RunOptions(session=SessionOptions(probes=PROBES, rate_per_s=20))
    report = measure_latency(environment, options)

    assert report.environment == "local"
    assert any("these are not AWS latencies" in note for note in report.notes)
    assert [mode.mode for mode in report.modes] == ["efo", "polling", "streams"]
    for mode in report.modes:
        assert mode.ok, (mode.mode, mode.problems, mode.worker_exit)
        assert mode.probes == PROBES
        assert [sink.sink for sink in mode.sinks] == ["replication", "search"]
        kinesis = mode.mode != "streams"
        expected = ConsumerBasis.KINESIS_ARRIVAL if kinesis else ConsumerBasis.WRITE
        assert mode.consumer_basis is expected
        for sink in mode.sinks:
            assert (sink.applied, sink.missing) == (PROBES, 0), (mode.mode, sink.sink)
            total = ordered(sink.end_to_end)
            consumer = ordered(sink.consumer)
            assert total.n == consumer.n == PROBES
            assert total.p50 > 0
            for percentile in ("p50", "p90", "p99", "max"):
                assert getattr(consumer, percentile) <= getattr(total, percentile)
            added = ordered(sink.consumer_added)
            assert added.n == PROBES and added.p50 > 0, (mode.mode, sink.sink)
            for percentile in ("p50", "p90", "p99", "max"):
                # Two clocks (monotonic for added, wall for end to end): a 1 ms allowance.
                assert getattr(added, percentile) <= getattr(total, percentile) + 1
            if kinesis:
                upstream = ordered(sink.upstream)
                assert upstream.n == PROBES and upstream.p50 >= 0
            else:
                assert sink.upstream is None
                assert consumer == total
    assert report.ok


def test_the_command_prints_the_table_and_the_emulator_caveat() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "consumer", "compare", "latency", "--modes", "streams",
         "--changes", "5"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("note: local emulators: these are not AWS latencies") for line in lines
    )
    header = next(line for line in lines if line.startswith("mode "))
    assert header.split()[:7] == ["mode", "sink", "n", "p50", "p90", "p99", "max"]
    assert len(header.split()) == 13
    assert lines[lines.index(header) - 1].rstrip().endswith("consumer added")
    rows = [line.split()[:3] for line in lines if line.startswith("streams ")]
    assert rows == [["streams", "replication", "5/5"], ["streams", "search", "5/5"]]
    assert lines[-1] == "result: OK"
    assert "latency: streams: done" in result.stderr
