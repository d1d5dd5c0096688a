"""PyPA's `wheel` shares our import name: the entry points must refuse to start when it wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import wheel

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WHEELCTL = Path(sys.executable).parent / "wheelctl"


@pytest.fixture
def shadowed(tmp_path) -> tuple[dict[str, str], Path]:
    """An environment whose `import wheel` finds a PyPA-like `wheel`, and a cwd outside the project."""
    fake = tmp_path / "site" / "wheel"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('"""PyPA wheel, as far as anyone can tell."""\n__version__ = "0.45.1"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHEEL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(fake.parent), str(PROJECT_ROOT)])
    env.pop("PYTHONSAFEPATH", None)
    return env, elsewhere


def run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def assert_refused_with_advice(result: subprocess.CompletedProcess) -> None:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "PyPA's 'wheel' package" in result.stderr
    assert "shadows" in result.stderr
    assert "pip uninstall wheel" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_real_import_is_ours():
    assert wheel.__wheel_middleware__ is True
    assert Path(wheel.__file__).resolve().parent == PROJECT_ROOT / "wheel"


def test_fake_wheel_really_shadows_ours(shadowed):
    env, cwd = shadowed
    result = run([sys.executable, "-c", "import wheel; print(wheel.__version__)"], env, cwd)
    assert result.stdout.strip() == "0.45.1"


@pytest.mark.parametrize("package", ["bridge", "workers"])
def test_importing_an_entry_package_fails_clearly_when_shadowed(shadowed, package):
    env, cwd = shadowed
    assert_refused_with_advice(run([sys.executable, "-c", f"import {package}"], env, cwd))


def test_wheelctl_fails_clearly_when_shadowed(shadowed):
    if not WHEELCTL.exists():
        pytest.fail(f"the console script {WHEELCTL} is not installed (`pip install -e .`)")
    env, cwd = shadowed
    assert_refused_with_advice(run([str(WHEELCTL), "--help"], env, cwd))


def test_guard_names_where_the_impostor_lives(shadowed, tmp_path):
    env, cwd = shadowed
    result = run([sys.executable, "-c", "import bridge"], env, cwd)
    assert str(tmp_path / "site" / "wheel") in result.stderr


@pytest.mark.parametrize("package", ["bridge", "workers"])
def test_entry_packages_import_fine_outside_the_project_when_not_shadowed(shadowed, package):
    env, cwd = shadowed
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    result = run([sys.executable, "-c", f"import {package}"], env, cwd)
    assert result.returncode == 0, result.stderr
