"""From observed applies to the report: the end-to-end time, the consumer's share and the
upstream share per basis, missing probes, and both renderings."""

from __future__ import annotations

import json

from consumer.compare.latency.observer import Applied
from consumer.compare.latency.percentiles import Summary
from consumer.compare.latency.probes import ProbeStamp
from consumer.compare.latency.render import render_json, render_text, report_data
from consumer.compare.latency.report import (
    ConsumerBasis,
    LatencyReport,
    ModeLatency,
    SinkLatency,
    sink_latency,
)


def applied(seq: int, written_us: int, applied_us: int, arrival_ms: int | None) -> Applied:
    return Applied(
        sink="replication",
        stamp=ProbeStamp("r/efo/measure", seq, written_us),
        applied_us=applied_us,
        shard_id="shardId-000000000000",
        arrival_ms=arrival_ms,
    )


def test_kinesis_modes_split_at_the_kinesis_arrival() -> None:
    applies = {
        0: applied(0, 1_000_000, 1_300_000, 1_100),  # 300 ms: 100 upstream + 200 consumer
        1: applied(1, 2_000_000, 2_500_000, 2_050),  # 500 ms: 50 upstream + 450 consumer
    }
    result = sink_latency("replication", applies, 3, ConsumerBasis.KINESIS_ARRIVAL)
    assert result.applied == 2 and result.missing == 1
    assert result.end_to_end == Summary(n=2, p50=300.0, p90=500.0, p99=500.0, max=500.0)
    assert result.consumer == Summary(n=2, p50=200.0, p90=450.0, p99=450.0, max=450.0)
    assert result.upstream == Summary(n=2, p50=50.0, p90=100.0, p99=100.0, max=100.0)


def test_streams_mode_counts_the_whole_time_as_the_consumers() -> None:
    applies = {0: applied(0, 1_000_000, 1_250_500, None)}
    result = sink_latency("search", applies, 1, ConsumerBasis.WRITE)
    assert result.end_to_end == result.consumer == Summary(1, 250.5, 250.5, 250.5, 250.5)
    assert result.upstream is None


def test_a_sink_that_applied_nothing_has_no_summaries() -> None:
    result = sink_latency("search", {}, 5, ConsumerBasis.KINESIS_ARRIVAL)
    assert (result.applied, result.missing) == (0, 5)
    assert result.end_to_end is result.consumer is result.upstream is None


def test_probes_outside_the_written_range_are_ignored() -> None:
    applies = {7: applied(7, 1, 2, None)}
    assert sink_latency("s", applies, 2, ConsumerBasis.WRITE).applied == 0


def _summary(value: float) -> Summary:
    return Summary(n=2, p50=value, p90=value + 1, p99=value + 2, max=value + 3)


def sample_report(missing: int = 0, problems: tuple[str, ...] = ()) -> LatencyReport:
    efo = ModeLatency(
        mode="efo",
        probes=2,
        consumer_basis=ConsumerBasis.KINESIS_ARRIVAL,
        sinks=(
            SinkLatency("replication", 2 - missing, missing, _summary(900), _summary(700), None),
            SinkLatency(
                "search", 2, 0, _summary(600), _summary(400), _summary(200), _summary(3)
            ),
        ),
        worker_exit=0,
        problems=problems,
    )
    streams = ModeLatency(
        mode="streams",
        probes=2,
        consumer_basis=ConsumerBasis.WRITE,
        sinks=(SinkLatency("replication", 2, 0, _summary(450), _summary(450), None),),
        worker_exit=0,
    )
    return LatencyReport(
        environment="local",
        run_id="abc",
        probes_per_mode=2,
        rate_per_s=20,
        percentile_method="nearest-rank",
        notes=("local emulators: these are not AWS latencies",),
        modes=(efo, streams),
    )


def test_a_report_is_ok_only_when_every_sink_applied_every_probe() -> None:
    assert sample_report().ok
    assert not sample_report(missing=1).ok
    assert not sample_report(problems=("the worker exited with status 1",)).ok
    no_sinks = ModeLatency("efo", 2, ConsumerBasis.KINESIS_ARRIVAL, (), 0)
    assert not no_sinks.ok


def test_the_text_report_has_a_row_per_mode_and_sink_and_the_caveats() -> None:
    text = render_text(sample_report())
    lines = text.splitlines()
    assert "note: local emulators: these are not AWS latencies" in lines
    assert "percentiles: nearest-rank" in lines[1]
    header = next(line for line in lines if line.startswith("mode"))
    assert header.split() == [
        "mode", "sink", "n", "p50", "p90", "p99", "max", "p50", "p99", "p50", "p99", "p50", "p99",
    ]  # fmt: skip
    groups = lines[lines.index(header) - 1]
    assert "end to end" in groups and "consumer share" in groups and "upstream" in groups
    assert "consumer added" in groups
    rows = [" ".join(line.split()) for line in lines if line.startswith(("efo ", "streams "))]
    assert rows == [
        "efo replication 2/2 900.0 901.0 902.0 903.0 700.0 702.0 - - - -",
        "efo search 2/2 600.0 601.0 602.0 603.0 400.0 402.0 200.0 202.0 3.0 5.0",
        "streams replication 2/2 450.0 451.0 452.0 453.0 450.0 452.0 - - - -",
    ]
    assert "streams: consumer share = apply - write (the DynamoDB stream is read directly)" in lines
    assert lines[-1] == "result: OK"


def test_the_text_report_shows_problems_and_an_incomplete_result() -> None:
    text = render_text(sample_report(missing=1, problems=("not every probe was applied",)))
    assert "efo: problem: not every probe was applied" in text
    assert "1/2" in text
    assert text.rstrip().endswith("result: INCOMPLETE")


def test_the_json_report_is_the_same_data() -> None:
    data = json.loads(render_json(sample_report()))
    assert data == report_data(sample_report())
    assert data["unit"] == "ms" and data["percentile_method"] == "nearest-rank"
    assert data["ok"] is True
    efo = data["modes"][0]
    assert efo["consumer_basis"] == "kinesis-arrival"
    assert efo["sinks"][1] == {
        "sink": "search",
        "applied": 2,
        "missing": 0,
        "end_to_end": {"n": 2, "p50": 600, "p90": 601, "p99": 602, "max": 603},
        "consumer": {"n": 2, "p50": 400, "p90": 401, "p99": 402, "max": 403},
        "upstream": {"n": 2, "p50": 200, "p90": 201, "p99": 202, "max": 203},
        "consumer_added_ms": {"n": 2, "p50": 3, "p90": 4, "p99": 5, "max": 6},
    }
    assert data["modes"][1]["sinks"][0]["upstream"] is None
