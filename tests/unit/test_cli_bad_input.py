"""Issue 20.1: command-line inputs that gave tracebacks now give one line and a non-zero exit."""

from __future__ import annotations

import pytest

from consumer.cli import main


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["health", "--timeout", "-1"], "--timeout"),
        (["health", "--timeout", "nan"], "--timeout"),
        (["health", "--timeout", "0"], "--timeout"),
        (["health", "--port", "70000"], "--port"),
        (["health", "--port", "0"], "--port"),
        (["run", "--until-idle", "nan"], "--until-idle"),
        (["run", "--until-idle", "inf"], "--until-idle"),
        (["search", "x", "--limit", "99999999999999999999999"], "--limit"),
        (["replay", "--from", "-1h", "--to-grace", "nan"], "--to-grace"),
        (["replay", "--from", "-1h", "--to-grace", "inf"], "--to-grace"),
    ],
)
def test_bad_numbers_are_one_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert expected in error.splitlines()[-1]


def test_a_relative_time_before_1970_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "CONSUMER_STREAM__NAME": "orders",
        "CONSUMER_PIPELINES__REPLICATION__ENABLED": "true",
        "CONSUMER_PIPELINES__REPLICATION__TABLE": "orders-replica",
        "CONSUMER_DLQ__QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/q",
        "CONSUMER_TELEMETRY__LOG_LEVEL": "error",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["replay", "--from", "-99999999999d", "--progress", "none"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "before 1970" in error


def test_health_asks_the_given_host(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["health", "--host", "localhost:8080"])
    assert exited.value.code == 2
    assert "--host" in capsys.readouterr().err.splitlines()[-1]
    assert main(["health", "--host", "127.0.0.2", "--port", "9", "--timeout", "1"]) == 1
    assert "http://127.0.0.2:9/readyz is not answering" in capsys.readouterr().err
