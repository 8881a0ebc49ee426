"""The embedded local AWS stack: moto server and kinesis-mock on loopback.

Local-only (demo and tests). Each piece runs as a child process in its own process group,
so stopping the stack kills everything it started. A piece that cannot start fails with one
line naming the piece, its port and the tail of its log.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from consumer.aws import AwsEndpoints

LOOPBACK = "127.0.0.1"
LOCAL_REGION = "us-east-1"
# kinesis-mock namespaces streams by a 12-digit access key id; any fixed pair suits moto.
LOCAL_ACCESS_KEY_ID = "000000000000"
LOCAL_SECRET_ACCESS_KEY = "local-secret"
STARTUP_TIMEOUT_S = 60.0

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KINESIS_MOCK_JS_ENV = "CONSUMER_KINESIS_MOCK_JS"
DEFAULT_STATE_DIR = PROJECT_ROOT / ".local-stack"


class LocalStackError(RuntimeError):
    """A piece of the local stack could not start; the message is one line for the user."""


@dataclass(frozen=True)
class LocalStackState:
    """What a running stack is: ports and pids, persisted so `local down` can find it."""

    moto_port: int
    kinesis_port: int
    moto_pid: int
    kinesis_pid: int
    log_dir: str

    @property
    def moto_url(self) -> str:
        return f"http://{LOOPBACK}:{self.moto_port}"

    @property
    def kinesis_url(self) -> str:
        return f"http://{LOOPBACK}:{self.kinesis_port}"

    def endpoints(self) -> AwsEndpoints:
        return local_endpoints(self.moto_url, self.kinesis_url)


def local_endpoints(moto_url: str, kinesis_url: str) -> AwsEndpoints:
    return AwsEndpoints(
        region=LOCAL_REGION,
        endpoint_urls={
            "dynamodb": moto_url,
            "dynamodbstreams": moto_url,
            "s3": moto_url,
            "sqs": moto_url,
            "cloudformation": moto_url,
            "kinesis": kinesis_url,
        },
        access_key_id=LOCAL_ACCESS_KEY_ID,
        secret_access_key=LOCAL_SECRET_ACCESS_KEY,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def kinesis_mock_script() -> Path:
    override = os.environ.get(KINESIS_MOCK_JS_ENV)
    if override:
        return Path(override)
    return PROJECT_ROOT / "infra" / "kinesis-mock" / "node_modules" / "kinesis-local" / "main.js"


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    tail = " | ".join(line.strip() for line in text[-lines:] if line.strip())
    return tail or "(empty log)"


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGTERM it when its parent dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the stop paths still kill the process group
    os.setsid()


@dataclass(frozen=True)
class _Piece:
    name: str
    port: int
    command: list[str]
    cwd: Path
    env: dict[str, str]
    probe: Callable[[int], bool]


def _http_answers(url: str, method: str = "GET") -> bool:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is up
    except (urllib.error.URLError, OSError):
        return False


class LocalStack:
    """Starts and stops moto server and kinesis-mock. Constructing one does nothing; `start()`
    spawns both and waits until they answer, `stop()` kills (idempotent); `with` does both."""

    def __init__(
        self,
        log_dir: Path,
        moto_port: int | None = None,
        kinesis_port: int | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self._log_dir = log_dir
        self._moto_port = moto_port
        self._kinesis_port = kinesis_port
        self._die_with_parent = die_with_parent
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self.state: LocalStackState | None = None

    def _pieces(self, moto_port: int, kinesis_port: int) -> list[_Piece]:
        node = shutil.which("node")
        script = kinesis_mock_script()
        if node is None:
            raise LocalStackError(
                f"local stack: kinesis-mock (port {kinesis_port}) needs node, "
                "which is not on PATH: install Node.js 20+"
            )
        if not script.is_file():
            raise LocalStackError(
                f"local stack: kinesis-mock (port {kinesis_port}) is not installed at {script}: "
                "run `make install` (npm ci in infra/kinesis-mock)"
            )
        kinesis_env = {
            "KINESIS_MOCK_PLAIN_PORT": str(kinesis_port),
            # The TLS port is unused but always bound; keep it off the well-known 4567.
            "KINESIS_MOCK_TLS_PORT": str(free_port()),
            "LOG_LEVEL": os.environ.get("KINESIS_MOCK_LOG_LEVEL", "WARN"),
            "AWS_REGION": LOCAL_REGION,
            "AWS_ACCOUNT_ID": LOCAL_ACCESS_KEY_ID,
            "CREATE_STREAM_DURATION": "100ms",
            "DELETE_STREAM_DURATION": "100ms",
            "REGISTER_STREAM_CONSUMER_DURATION": "100ms",
            "DEREGISTER_STREAM_CONSUMER_DURATION": "100ms",
            "MERGE_SHARDS_DURATION": "100ms",
            "SPLIT_SHARD_DURATION": "100ms",
            "UPDATE_SHARD_COUNT_DURATION": "100ms",
            "SHARD_LIMIT": "1000",
        }
        return [
            _Piece(
                name="moto server",
                port=moto_port,
                command=[sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(moto_port)],
                cwd=self._log_dir,
                env={},
                probe=lambda port: _http_answers(f"http://{LOOPBACK}:{port}/moto-api/"),
            ),
            _Piece(
                name="kinesis-mock",
                port=kinesis_port,
                command=[node, str(script)],
                # kinesis-mock reads its TLS certificate (server.json) from the working directory.
                cwd=script.parent,
                env=kinesis_env,
                probe=lambda port: _http_answers(f"http://{LOOPBACK}:{port}/", "POST"),
            ),
        ]

    def start(self, timeout_s: float = STARTUP_TIMEOUT_S) -> LocalStackState:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        moto_port = self._moto_port or free_port()
        kinesis_port = self._kinesis_port or free_port()
        pieces = self._pieces(moto_port, kinesis_port)
        try:
            for piece in pieces:
                if not port_is_free(piece.port):
                    raise LocalStackError(
                        f"local stack: {piece.name} cannot start: port {LOOPBACK}:{piece.port} "
                        "is already in use"
                    )
            for piece in pieces:
                self._spawn(piece)
            deadline = time.monotonic() + timeout_s
            for piece in pieces:
                self._wait_until_answering(piece, deadline)
        except BaseException:
            self.stop()
            raise
        self.state = LocalStackState(
            moto_port=moto_port,
            kinesis_port=kinesis_port,
            moto_pid=self._processes["moto server"].pid,
            kinesis_pid=self._processes["kinesis-mock"].pid,
            log_dir=str(self._log_dir),
        )
        return self.state

    def _log_path(self, piece: _Piece) -> Path:
        return self._log_dir / f"{piece.name.replace(' ', '-')}.log"

    def _spawn(self, piece: _Piece) -> None:
        log = self._log_path(piece).open("wb")
        env = {**os.environ, **piece.env}
        try:
            process = subprocess.Popen(
                piece.command,
                cwd=piece.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if self._die_with_parent else os.setsid,
            )
        except OSError as error:
            raise LocalStackError(
                f"local stack: {piece.name} (port {piece.port}) could not be started: {error}"
            ) from error
        finally:
            log.close()
        self._processes[piece.name] = process

    def _wait_until_answering(self, piece: _Piece, deadline: float) -> None:
        process = self._processes[piece.name]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LocalStackError(
                    f"local stack: {piece.name} (port {piece.port}) exited with status "
                    f"{process.returncode}; log: {_tail(self._log_path(piece))}"
                )
            if piece.probe(piece.port):
                return
            time.sleep(0.1)
        raise LocalStackError(
            f"local stack: {piece.name} (port {piece.port}) did not answer in time; "
            f"log: {_tail(self._log_path(piece))}"
        )

    def stop(self, grace_s: float = 1.0) -> None:
        """SIGTERM every piece's process group, then SIGKILL what is left after `grace_s`.

        kinesis-mock does not exit on SIGTERM once it has served a SubscribeToShard stream;
        the emulators hold no state worth a longer wait.
        """
        for process in self._processes.values():
            _kill_group(process.pid)
        deadline = time.monotonic() + grace_s
        for process in self._processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self._processes.clear()

    def __enter__(self) -> LocalStackState:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _kill_group(pid: int, sig: signal.Signals = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


# --- the detached stack behind `consumer local up|down|status` ---------------------------


def _state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def read_state(state_dir: Path = DEFAULT_STATE_DIR) -> LocalStackState | None:
    try:
        data = json.loads(_state_file(state_dir).read_text())
        return LocalStackState(**data)
    except (OSError, ValueError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def state_is_running(state: LocalStackState) -> bool:
    return _alive(state.moto_pid) and _alive(state.kinesis_pid)


def up(
    state_dir: Path = DEFAULT_STATE_DIR,
    moto_port: int | None = None,
    kinesis_port: int | None = None,
) -> LocalStackState:
    existing = read_state(state_dir)
    if existing is not None and state_is_running(existing):
        return existing
    stack = LocalStack(
        state_dir / "logs", moto_port=moto_port, kinesis_port=kinesis_port, die_with_parent=False
    )
    state = stack.start()
    _state_file(state_dir).write_text(json.dumps(asdict(state)))
    return state


def down(state_dir: Path = DEFAULT_STATE_DIR, timeout_s: float = 10.0) -> bool:
    """Stops a detached stack; returns False when none was recorded."""
    state = read_state(state_dir)
    if state is None:
        return False
    pids = (state.moto_pid, state.kinesis_pid)
    for pid in pids:
        _kill_group(pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            _kill_group(pid, signal.SIGKILL)
    _state_file(state_dir).unlink(missing_ok=True)
    return True
