"""The Makefile's plumbing: the Python version gate and the install stamps (via make -n)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

PIP_INSTALL = "pip install --disable-pip-version-check -e '.[test]'"


def _make(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd, capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def project(repo_root: Path, tmp_path: Path) -> Path:
    """A copy of the Makefile and pyproject.toml beside a stand-in, already created .venv."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(repo_root / name, tmp_path / name)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").touch()
    return tmp_path


def _set_mtime(path: Path, seconds: float) -> None:
    os.utime(path, (seconds, seconds))


def test_test_installs_once_then_only_after_pyproject_changes(project):
    first = _make(project, "-n", "test")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert PIP_INSTALL in lines[0]
    assert [line.split()[0] for line in lines[2:]] == [
        ".venv/bin/ruff", ".venv/bin/lint-imports", ".venv/bin/mypy", "QT_QPA_PLATFORM=offscreen",
    ]  # fmt: skip
    assert lines[-1].rstrip().endswith("-m pytest")

    pyproject = project / "pyproject.toml"
    _set_mtime(pyproject, 1_000_000)
    for stamp in (".installed-test", ".installed-runtime"):
        (project / ".venv" / stamp).touch()
    again = _make(project, "-n", "test")
    assert PIP_INSTALL not in again.stdout
    # A run after a test install does not install again either.
    assert "pip install" not in _make(project, "-n", "run").stdout

    pyproject.touch()  # an edit to the dependencies
    assert PIP_INSTALL in _make(project, "-n", "test").stdout


def test_run_checks_qt_libraries_before_starting_the_app(project):
    lines = _make(project, "-n", "run").stdout.splitlines()
    check = next(i for i, line in enumerate(lines) if "check_qt_libs.py" in line)
    start = next(i for i, line in enumerate(lines) if line.startswith(".venv/bin/scout-desk"))
    assert check < start


def test_a_too_old_python_is_refused_with_its_version(project, tmp_path):
    # A stand-in interpreter that answers the Makefile's two questions as Python 3.9 would.
    fake = tmp_path / "python3.9"
    fake.write_text(
        '#!/bin/sh\ncase "$2" in\n  *platform*) echo 3.9.18 ;;\n  *version_info*) exit 1 ;;\nesac\n'
    )
    fake.chmod(0o755)
    result = _make(project, "check-python", f"PYTHON={fake}")
    assert result.returncode != 0
    assert "needs Python 3.11 or newer" in result.stderr
    assert "is 3.9.18" in result.stderr


def test_a_missing_python_is_named(project, tmp_path):
    result = _make(project, "check-python", f"PYTHON={tmp_path / 'no-python'}")
    assert result.returncode != 0
    assert "could not be run" in result.stderr
