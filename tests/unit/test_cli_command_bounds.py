"""Issue 20.3 ("other commands"): numbers no command may accept. `replay --workers 1000` was
taken as is and started 999 worker processes on the host; now the bound is checked before
the settings are even read: one line naming the option, exit 2, no traceback."""

from __future__ import annotations

import pytest

from consumer.cli import main
from consumer.cli.replay_cmd import MAX_WORKERS


@pytest.mark.parametrize(
    "workers", ["0", "-3", str(MAX_WORKERS + 1), "1000", "99999999999999999999999", "two", "1.5"]
)
def test_replay_workers_outside_1_to_the_bound_are_one_line(
    workers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["replay", "--from", "-1h", "--workers", workers])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert "--workers" in error.splitlines()[-1]


def test_replay_workers_within_the_bound_are_taken() -> None:
    from consumer.cli import build_parser

    for workers in ("1", str(MAX_WORKERS)):
        args = build_parser().parse_args(["replay", "--from", "-1h", "--workers", workers])
        assert args.workers == int(workers)


@pytest.mark.parametrize(
    "target", [["--app", "orders"], ["--lease-table", "orders-leases"]], ids=["app", "table"]
)
def test_import_kcl_from_the_table_it_imports_into_is_one_line(
    target: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Our own lease table named as the KCL source: refused before any AWS call (the
    endpoint below answers nothing)."""
    argv = ["leases", "import-kcl", "--table", "orders-leases", *target, "--observe-s", "0"]
    code = main([*argv, "--endpoint-url-dynamodb", "http://127.0.0.1:9", "--region", "us-east-1"])
    assert code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error and error.count("\n") == 1
    assert "--table orders-leases is the lease table being imported into" in error
