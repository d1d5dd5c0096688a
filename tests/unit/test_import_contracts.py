"""The import contracts in pyproject.toml hold, and each one catches the violation it exists for.

`lint-imports` runs on a copy of the packages with one forbidden import added, so a contract that
stopped checking anything (a renamed package, a typo in a module name) fails here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("wheel", "workers", "bridge", "sandbox")


def lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env={"PYTHONPATH": str(tree), "PATH": ""},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_contracts_hold_on_the_code_as_it_is(tree):
    result = lint(tree)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "broken" in result.stdout and " 0 broken" in result.stdout


VIOLATIONS = {
    "layers: workers > bridge > wheel": ("wheel/_violation.py", "import workers.dispatch\n"),
    "bridge/ sends tasks through a callable it is given: it imports no Celery": ("bridge/_violation.py",
                                                                                 "import celery\n"),
    "wheel/ (the core) imports no Celery and no MQ client": ("wheel/_violation.py", "import kombu\n"),
    "the codecs and mappers do no I/O": ("wheel/oms/_violation.py", "import wheel.db.models\n"),
    "the sandbox is an island: it imports nothing of the product": ("sandbox/_violation.py", "import wheel.domain\n"),
    "the sandbox is an island: the product imports nothing of it": ("workers/_violation.py", "import sandbox.core\n"),
}


@pytest.mark.parametrize("contract", sorted(VIOLATIONS))
def test_a_forbidden_import_breaks_its_contract(tree, contract):
    path, code = VIOLATIONS[contract]
    violation = tree / path
    violation.write_text(code)
    try:
        result = lint(tree)
    finally:
        violation.unlink()
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout, result.stdout[-3000:]
