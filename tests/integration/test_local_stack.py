"""The local stack: `consumer local up|down|status`, clear errors, nothing left behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from consumer.local.stack import LOOPBACK, LocalStack, LocalStackError, LocalStackState

CONSUMER = [sys.executable, "-m", "consumer"]


def run_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CONSUMER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; read its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_session_stack_answers_for_every_service(local_stack: LocalStackState) -> None:
    endpoints = local_stack.endpoints()
    assert endpoints.client("dynamodb").list_tables()["TableNames"] is not None
    assert endpoints.client("dynamodbstreams").list_streams()["Streams"] is not None
    assert endpoints.client("s3").list_buckets()["Buckets"] is not None
    assert endpoints.client("sqs").list_queues().get("QueueUrls", []) is not None
    assert endpoints.client("kinesis").list_streams()["StreamNames"] is not None


def test_local_up_then_down_leaves_no_process(tmp_path: Path) -> None:
    up = run_cli("local", "up", "--state-dir", str(tmp_path))
    assert up.returncode == 0, up.stderr
    status = run_cli("local", "status", "--state-dir", str(tmp_path))
    assert status.returncode == 0
    assert "kinesis-mock" in status.stdout and "moto server" in status.stdout
    pids = [int(line.split("pid")[1]) for line in status.stdout.splitlines() if " pid " in line]
    assert len(pids) == 2 and all(pid_alive(pid) for pid in pids)

    down = run_cli("local", "down", "--state-dir", str(tmp_path))
    assert down.returncode == 0
    assert not any(pid_alive(pid) for pid in pids)
    after = run_cli("local", "status", "--state-dir", str(tmp_path))
    assert after.returncode == 3 and "not running" in after.stdout


def test_local_up_with_kinesis_port_taken_prints_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind((LOOPBACK, 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = run_cli("local", "up", "--state-dir", str(tmp_path), "--kinesis-port", str(port))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "kinesis-mock" in lines[0] and str(port) in lines[0] and "in use" in lines[0]
    assert run_cli("local", "status", "--state-dir", str(tmp_path)).returncode == 3


def test_missing_kinesis_mock_names_the_piece_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSUMER_KINESIS_MOCK_JS", str(tmp_path / "nowhere" / "main.js"))
    with pytest.raises(LocalStackError, match=r"kinesis-mock .* not installed .*make install"):
        LocalStack(tmp_path).start()


def test_piece_that_dies_at_start_reports_its_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "main.js"
    broken.write_text("console.error('cannot start: bad config'); process.exit(3);\n")
    monkeypatch.setenv("CONSUMER_KINESIS_MOCK_JS", str(broken))
    with pytest.raises(LocalStackError, match=r"kinesis-mock .* exited with status 3.*bad config"):
        LocalStack(tmp_path / "logs").start()


def test_stack_children_die_with_a_killed_parent(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from consumer.local.stack import LocalStack\n"
        f"state = LocalStack(Path({str(tmp_path)!r})).start()\n"
        "print(state.moto_pid, state.kinesis_pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert all(pid_alive(pid) for pid in pids)
    parent.kill()  # kill -9: no cleanup code runs in the parent
    parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids):
        time.sleep(0.1)
    assert not any(pid_alive(pid) for pid in pids)
