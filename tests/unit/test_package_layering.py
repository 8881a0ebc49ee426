"""Package layering (issue 16): lower packages never import higher ones. The pipelines take
the records and batches of `consumer/records/batch.py`, not of the readers (`sources/`), and
`checkpoints/` imports nothing from `consumer/` (the service passes its AWS pieces in)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every module each file of `package` imports (at any depth, also inside functions)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("consumer/pipeline", "consumer.sources"),
        ("consumer/records", "consumer.sources"),
        ("consumer/records", "consumer.pipeline"),
        ("checkpoints", "consumer"),
    ],
)
def test_a_lower_package_does_not_import_a_higher_one(package: str, forbidden: str) -> None:
    offending = {
        path: sorted(m for m in modules if m == forbidden or m.startswith(forbidden + "."))
        for path, modules in imported_modules(package).items()
    }
    assert {path: mods for path, mods in offending.items() if mods} == {}
