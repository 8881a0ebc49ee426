"""infra/Dockerfile and infra/requirements.lock: what the image promises, read statically (no
Docker engine here). tests/integration/test_infra_image.py builds the same wheelhouse and runs
the installed `consumer`."""

from __future__ import annotations

import argparse
import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from consumer.cli.health_cmd import register as register_health
from consumer.settings import TelemetrySection

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "Dockerfile"
DOCKERIGNORE = ROOT / "infra" / "Dockerfile.dockerignore"
LOCK = ROOT / "infra" / "requirements.lock"
# What the build stage copies from the context (and so all the wheel is built from).
IMAGE_SOURCES = (
    "pyproject.toml",
    "README.md",
    "infra/requirements.lock",
    "consumer",
    "checkpoints",
)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, arguments = stripped.partition(" ")
        result.append((keyword.upper(), " ".join(arguments.split())))
    return result


def runtime_stage() -> list[tuple[str, str]]:
    steps = instructions()
    starts = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    assert len(starts) == 2, "a build stage and a runtime stage"
    return steps[starts[-1] :]


def lock_entries() -> dict[str, tuple[str, str]]:
    """Canonical name -> (version, sha256) of each `name==version --hash=sha256:...` entry."""
    text = re.sub(r"\s*\\\n\s*", " ", LOCK.read_text())
    entries = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            found = re.fullmatch(r"(\S+)==(\S+) --hash=sha256:([0-9a-f]{64})", line.strip())
            assert found, f"not pinned with a sha256 hash: {line}"
            name, version, digest = found.groups()
            entries[canonicalize_name(name)] = (version, digest)
    return entries


def lock_pins() -> dict[str, str]:
    return {name: version for name, (version, _) in lock_entries().items()}


def freeze_module() -> ModuleType:
    path = ROOT / "infra" / "freeze_runtime.py"
    spec = importlib.util.spec_from_file_location("freeze_runtime", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_stages_on_one_pinned_slim_python() -> None:
    froms = [arguments.split() for keyword, arguments in instructions() if keyword == "FROM"]
    assert [(stage[1], stage[2]) for stage in froms] == [("AS", "build"), ("AS", "runtime")]
    build, runtime = (stage[0] for stage in froms)
    assert build == runtime, "wheels built on one base must install on the same base"
    # Pinned by digest (issue 20.5): a tag can be re-pushed, a digest cannot change.
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?@sha256:[0-9a-f]{64}", runtime), runtime


def test_runtime_stage_installs_only_the_wheelhouse() -> None:
    runs = [arguments for keyword, arguments in runtime_stage() if keyword == "RUN"]
    installs = [run for run in runs if "pip install" in run]
    assert len(installs) == 1
    assert "--no-deps --no-index" in installs[0]
    assert "from=build" in installs[0]
    assert "pip check" in installs[0]
    assert not [k for k, _ in runtime_stage() if k in ("COPY", "ADD")], "sources stay in build"


def test_runtime_runs_as_the_unprivileged_user() -> None:
    users = [arguments for keyword, arguments in runtime_stage() if keyword == "USER"]
    assert users == ["10001:10001"]
    assert any("useradd --system --uid 10001" in a for k, a in runtime_stage() if k == "RUN")


def test_health_check_entrypoint_and_port() -> None:
    steps = dict((keyword, arguments) for keyword, arguments in runtime_stage())
    assert steps["HEALTHCHECK"].endswith('CMD ["consumer", "health"]')
    assert steps["ENTRYPOINT"] == '["consumer"]'
    assert steps["CMD"] == '["run"]'
    parser = argparse.ArgumentParser()
    register_health(parser.add_subparsers())
    port = parser.parse_args(["health"]).port
    assert steps["EXPOSE"] == str(port) == str(TelemetrySection().health_port)


def test_build_context_admits_exactly_what_the_build_copies() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert admitted == set(IMAGE_SOURCES)
    copied = {
        source.rstrip("/")
        for keyword, arguments in instructions()
        if keyword == "COPY" and "--from" not in arguments
        for source in arguments.split()[:-1]
    }
    assert copied == set(IMAGE_SOURCES)


def test_lock_pins_every_runtime_dependency_within_its_range() -> None:
    pins = lock_pins()
    with (ROOT / "pyproject.toml").open("rb") as handle:
        declared = tomllib.load(handle)["project"]["dependencies"]
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is a dependency but not in {LOCK.name}: regenerate it"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]}, outside {requirement.specifier}"
        )


def test_lock_holds_no_dev_tools() -> None:
    pins = lock_pins()
    with (ROOT / "pyproject.toml").open("rb") as handle:
        dev = tomllib.load(handle)["project"]["optional-dependencies"]["dev"]
    for text in dev:
        assert canonicalize_name(Requirement(text).name) not in pins, text


def test_lock_text_format_matches_the_generator() -> None:
    module = freeze_module()
    hashes = {name: digest for name, (_, digest) in lock_entries().items()}
    text = module.lock_text(lock_pins(), hashes)
    assert text == LOCK.read_text(), "edit the lock only through infra/freeze_runtime.py"


def test_the_image_installs_the_lock_in_hash_checking_mode() -> None:
    """Issue 20.5: a pin alone trusts whatever file the index serves for that version."""
    (build,) = [a for k, a in instructions() if k == "RUN" and "requirements.lock" in a]
    assert "--require-hashes" in build
    assert len(lock_entries()) == len(lock_pins()) > 0
