"""`consumer compare latency` options: defaults, and one line naming the option for each bad
value (exit status 2), before anything is started or written."""

from __future__ import annotations

import pytest

from consumer.cli import build_parser, main
from consumer.cli.compare_latency_cmd import options_from_args, parse_modes


def test_compare_lists_the_latency_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    assert "latency" in capsys.readouterr().out


def test_the_defaults_are_a_short_local_run_of_every_mode() -> None:
    args = build_parser().parse_args(["compare", "latency"])
    options = options_from_args(args)
    assert options.modes == ("efo", "polling", "streams")
    assert options.session.probes == 50
    assert options.session.rate_per_s == 20
    assert args.config is None and args.table is None and not args.yes and not args.json


def test_options_are_converted() -> None:
    args = build_parser().parse_args(
        ["compare", "latency", "--changes", "10", "--modes", " streams, efo", "--rate", "5",
         "--timeout", "12"]
    )  # fmt: skip
    options = options_from_args(args)
    assert options.modes == ("streams", "efo")
    assert (options.session.probes, options.session.rate_per_s) == (10, 5.0)
    assert options.session.settle_timeout_s == 12.0


def test_modes_must_be_known_and_distinct() -> None:
    assert parse_modes("polling") == ("polling",)
    with pytest.raises(ValueError, match="--modes takes"):
        parse_modes("efo,lambda")
    with pytest.raises(ValueError, match="--modes takes"):
        parse_modes(" , ")
    with pytest.raises(ValueError, match="twice"):
        parse_modes("efo,efo")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--changes", "0"], "--changes must be between 1 and 100000, got 0"),
        (["--changes", "ten"], "--changes must be a whole number, got 'ten'"),
        (["--rate", "0"], "--rate must be between 0.1 and 1000, got 0"),
        (["--modes", "kinesis"], "--modes takes a comma-separated list of efo, polling, streams"),
        (["--table", "orders"], "--table and --yes go with --config FILE"),
        (["--yes"], "--table and --yes go with --config FILE"),
        (["--config", "prod.toml"], "give --table NAME and --yes"),
        (["--config", "prod.toml", "--table", "orders"], "give --table NAME and --yes"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", "latency", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("consumer compare latency: ")
    assert message in line


def test_a_missing_config_file_is_reported_before_anything_runs(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["compare", "latency", "--config", "/nonexistent.toml", "--table", "t", "--yes"]
    assert main(argv) == 2
    assert "config file /nonexistent.toml does not exist" in capsys.readouterr().err
