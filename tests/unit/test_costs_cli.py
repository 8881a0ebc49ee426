"""`consumer compare cost`: the report, JSON, the plot, and one clear line for bad input."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumer.cli import compare_cmd
from consumer.compare.costs.compare import ScanRange, compare
from consumer.compare.costs.errors import CostInputError
from consumer.compare.costs.plot import PlotError, plot_comparison
from consumer.compare.costs.prices import load_region
from consumer.compare.costs.scenario import LambdaSizing, Scenario, ServiceSizing, Workload

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REFERENCE = ["compare", "cost", "--writes-per-day", "10000000", "--item-kb", "2"]


def run(argv: list[str]) -> int:
    """Parse `argv` as the `consumer` command would and call the handler."""
    parser = argparse.ArgumentParser(prog="consumer")
    compare_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def test_text_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(REFERENCE) == 0
    out = capsys.readouterr().out
    for title in (
        "Kinesis on-demand, enhanced fan-out",
        "Kinesis on-demand, shared polling",
        "Kinesis provisioned, enhanced fan-out",
        "Kinesis provisioned, shared polling",
        "DynamoDB Streams + Lambda",
    ):
        assert title in out
    assert "DynamoDB change data capture" in out
    assert "Cheapest: DynamoDB Streams + Lambda" in out
    assert "Unverified prices used" in out


def test_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert run([*REFERENCE, "--consumers", "3", "--json"]) == 0
    document: dict[str, Any] = orjson.loads(capsys.readouterr().out)
    assert document["region"] == "us-east-1"
    assert document["inputs"]["consumers"] == 3
    designs = {entry["design"]: entry for entry in document["designs"]}
    assert set(designs) == {
        "kinesis-on-demand-efo",
        "kinesis-on-demand-polling",
        "kinesis-provisioned-efo",
        "kinesis-provisioned-polling",
        "streams-lambda",
    }
    lambda_design = designs["streams-lambda"]
    assert sum(line["usd_per_month"] for line in lambda_design["lines"]) == pytest.approx(
        lambda_design["total_usd_per_month"]
    )
    assert document["cheapest"] == document["ranking"][0]
    assert document["crossovers"], "3 consumers: the order changes in the scanned range"
    assert {"writes_per_day", "cheaper_below", "cheaper_above"} <= set(document["crossovers"][0])


def test_options_reach_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        *REFERENCE,
        "--update-share", "1", "--retention-days", "30", "--peak-factor", "3",
        "--batch-size", "500", "--lambda-memory-mb", "1024", "--task-records-per-s", "2e3",
        "--stream-shards", "8", "--json-overhead", "1.5", "--envelope-bytes", "300",
        "--failure-rate", "0.001", "--min-tasks", "3", "--json",
    ]  # fmt: skip
    assert run(argv) == 0
    inputs = orjson.loads(capsys.readouterr().out)["inputs"]
    assert inputs["update_share"] == 1
    assert inputs["retention_days"] == 30
    assert inputs["peak_factor"] == 3
    assert inputs["batch_size"] == 500
    assert inputs["lambda_memory_mb"] == 1024
    assert inputs["task_records_per_s"] == 2000
    assert inputs["stream_shards"] == 8
    assert inputs["json_overhead"] == 1.5
    assert inputs["envelope_bytes"] == 300
    assert inputs["failure_rate"] == 0.001
    assert inputs["min_tasks"] == 3


def test_users_price_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.json"
    document = load_region("us-east-1").model_dump(mode="json")
    document["region"] = "eu-west-1"
    path.write_bytes(orjson.dumps(document))
    assert run([*REFERENCE, "--prices", str(path)]) == 0
    assert "eu-west-1, prices: " + str(path) in capsys.readouterr().out
    assert run([*REFERENCE, "--prices", str(path), "--region", "us-east-1"]) == 2
    assert "does not match" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--writes-per-day", "-5"], "--writes-per-day must be greater than 0, got -5"),
        (["--writes-per-day", "0"], "--writes-per-day must be greater than 0, got 0"),
        (["--writes-per-day", "lots"], "--writes-per-day must be a number, got 'lots'"),
        (["--writes-per-day", "inf"], "--writes-per-day must be a finite number"),
        (["--item-kb", "0"], "--item-kb must be greater than 0"),
        (["--item-kb", "500"], "--item-kb must be at most 400"),
        (["--update-share", "1.5"], "--update-share must be between 0 and 1"),
        (["--consumers", "0"], "--consumers must be at least 1"),
        (["--consumers", "2.5"], "--consumers must be a whole number"),
        (["--retention-days", "0.5"], "--retention-days must be between 1 and 365"),
        (["--peak-factor", "0.5"], "--peak-factor must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be between 1 and 10000"),
        (["--lambda-memory-mb", "64"], "--lambda-memory-mb must be between 128 and 10240"),
        (["--task-vcpu", "0.3"], "--task-vcpu must be a Fargate size"),
        (["--task-records-per-s", "-1"], "--task-records-per-s must be greater than 0"),
        (["--failure-rate", "2"], "--failure-rate must be between 0 and 1"),
        (["--stream-shards", "0"], "--stream-shards must be at least 1"),
        (["--scan-min", "-1"], "--scan-min must be a finite number greater than 0"),
        (["--scan-min", "1e9", "--scan-max", "1e3"], "--scan-max must be greater than"),
        (["--region", "mars-north-1"], "known regions: us-east-1"),
        (["--prices", "/nonexistent.json"], "cannot read price file /nonexistent.json"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    extra: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["compare", "cost", "--writes-per-day", "1e6", "--item-kb", "1", *extra]
    assert run(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("consumer compare cost: ")
    assert expected in captured.err


def test_malformed_price_file_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = load_region("us-east-1").model_dump(mode="json")
    del document["prices"]["kinesis_efo_read_gb"]
    path = tmp_path / "broken.json"
    path.write_bytes(orjson.dumps(document))
    assert run([*REFERENCE, "--prices", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "prices.kinesis_efo_read_gb: missing key" in err


def test_compare_without_an_action_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["compare"]) == 2
    assert "cost" in capsys.readouterr().err


def test_model_errors_name_the_parameter() -> None:
    with pytest.raises(CostInputError) as caught:
        Workload(writes_per_day=float("nan"), item_kb=1)
    assert caught.value.parameter == "writes_per_day"
    assert caught.value.option == "--writes-per-day"
    with pytest.raises(CostInputError, match="consumers must be a whole number"):
        Workload(writes_per_day=1, item_kb=1, consumers=True)
    with pytest.raises(CostInputError, match="min_tasks"):
        ServiceSizing(min_tasks=0)
    with pytest.raises(CostInputError, match="lambda_record_ms"):
        LambdaSizing(lambda_record_ms=-1)


def test_plot_is_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "cost.png"
    assert run([*REFERENCE, "--consumers", "3", "--scan-max", "1e8", "--plot", str(path)]) == 0
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert f"plot written to {path}" in capsys.readouterr().err


def test_plot_without_matplotlib_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    comparison = compare(
        Scenario(Workload(writes_per_day=1e6, item_kb=1)), load_region("us-east-1"),
        ScanRange(1e3, 1e5),
    )  # fmt: skip
    with pytest.raises(PlotError, match="pip install matplotlib"):
        plot_comparison(comparison, tmp_path / "never.png")
    assert not (tmp_path / "never.png").exists()


def test_plot_failure_after_the_report_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "missing-dir" / "cost.png"
    assert run([*REFERENCE, "--scan-max", "1e5", "--plot", str(target)]) == 1
    captured = capsys.readouterr()
    assert "Cheapest:" in captured.out
    assert "cannot write plot" in captured.err


def test_through_the_consumer_command(capsys: pytest.CaptureFixture[str]) -> None:
    import consumer.cli

    assert consumer.cli.main([*REFERENCE, "--scan-max", "1e5"]) == 0
    assert "Cheapest:" in capsys.readouterr().out
