"""The image's install, without Docker: the steps of infra/Dockerfile in a temporary directory.

Build stage: a wheel of the project from exactly the files the Dockerfile copies, plus a
wheelhouse of infra/requirements.lock. Runtime stage: a fresh venv that installs only those
wheels (`--no-deps --no-index`), `pip check` (the lock is complete), then `consumer --help` and
the HEALTHCHECK command `consumer health`, as the container would run them.

Needs the package index (or pip's cache) for the wheelhouse: about a minute on a cold cache.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
# What the build stage copies (tests/unit/test_infra_dockerfile.py holds the Dockerfile to it).
SOURCES = ("pyproject.toml", "README.md", "consumer", "checkpoints")


def isolated(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Runs outside the work tree (as the image's WORKDIR /tmp) and without PYTHONPATH, so
    nothing but the installed wheels can be imported."""
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("CONSUMER_")
    }
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=tempfile.gettempdir(),
        env=env,
    )


def run(command: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    result = isolated(command, timeout)
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result


def pip(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *arguments]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("image")
    context = work / "src"
    context.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.so")
            )
        else:
            shutil.copy2(source, context / name)
    wheels = work / "wheels"
    # Build stage.
    run(
        pip(
            "wheel",
            "--quiet",
            "--wheel-dir",
            str(wheels),
            "-r",
            str(ROOT / "infra/requirements.lock"),
        )
    )
    run(pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(context)))
    # Runtime stage: a clean interpreter environment, the wheelhouse and nothing else.
    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    run(
        pip(
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            *sorted(str(wheel) for wheel in wheels.glob("*.whl")),
        )
    )
    run(pip("--python", str(python), "check"))
    return venv


def test_installed_consumer_lists_its_commands(image_venv: Path) -> None:
    result = run([str(image_venv / "bin" / "consumer"), "--help"], timeout=60)
    for command in ("run", "health", "leases", "dlq"):
        assert f"    {command}" in result.stdout, f"{command} missing from:\n{result.stdout}"


def test_installed_package_is_the_wheel_not_the_work_tree(image_venv: Path) -> None:
    python = str(image_venv / "bin" / "python")
    result = run([python, "-c", "import consumer, checkpoints; print(consumer.__file__)"])
    assert str(image_venv) in result.stdout


def test_the_wheel_carries_the_compiled_decoder(image_venv: Path) -> None:
    python = str(image_venv / "bin" / "python")
    check = "from consumer.records.attribute import NATIVE_PYTHON_VIEW as N; print(N)"
    assert run([python, "-c", check]).stdout.strip() == "True"


def test_health_check_fails_cleanly_without_a_worker(image_venv: Path) -> None:
    port = free_port()
    result = isolated(
        [str(image_venv / "bin" / "consumer"), "health", "--port", str(port), "--timeout", "2"],
        timeout=60,
    )
    assert result.returncode == 1
    assert "is not answering" in result.stderr
