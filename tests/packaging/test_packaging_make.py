"""The Makefile's plumbing: the Python version gate and the install stamps (via make -n)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

PIP_INSTALL = "pip install --disable-pip-version-check -e '.[test]'"
VLLM_SETUP = ".venv-vllm/bin/python packaging/vllm/setup_venv.py .venv-vllm"
VLLM_INPUTS = ("requirements.txt", "setup_venv.py", "sitecustomize.py")


def _make(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd, capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def project(repo_root: Path, tmp_path: Path) -> Path:
    """A copy of the Makefile, pyproject.toml and packaging/vllm beside stand-in, already
    created .venv and .venv-vllm."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(repo_root / name, tmp_path / name)
    vllm = tmp_path / "packaging" / "vllm"
    vllm.mkdir(parents=True)
    for name in VLLM_INPUTS:
        shutil.copy2(repo_root / "packaging" / "vllm" / name, vllm / name)
    for venv in (".venv", ".venv-vllm"):
        (tmp_path / venv / "bin").mkdir(parents=True)
        (tmp_path / venv / "bin" / "python").touch()
    return tmp_path


def _set_mtime(path: Path, seconds: float) -> None:
    os.utime(path, (seconds, seconds))


def test_test_installs_once_then_only_after_pyproject_changes(project):
    first = _make(project, "-n", "test")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert PIP_INSTALL in lines[0]
    # The vLLM server's venv for tests/remote comes next (before any check runs).
    assert lines[2:4] == [VLLM_SETUP, "touch .venv-vllm/.installed"]
    assert [line.split()[0] for line in lines[4:]] == [
        ".venv/bin/ruff", ".venv/bin/lint-imports", ".venv/bin/mypy", "QT_QPA_PLATFORM=offscreen",
    ]  # fmt: skip
    assert lines[-1].rstrip().endswith("-m pytest")

    pyproject = project / "pyproject.toml"
    _set_mtime(pyproject, 1_000_000)
    for stamp in (".installed-test", ".installed-runtime"):
        (project / ".venv" / stamp).touch()
    (project / ".venv-vllm" / ".installed").touch()
    again = _make(project, "-n", "test")
    assert PIP_INSTALL not in again.stdout
    assert VLLM_SETUP not in again.stdout
    # A run after a test install does not install again either.
    assert "pip install" not in _make(project, "-n", "run").stdout

    pyproject.touch()  # an edit to the dependencies
    assert PIP_INSTALL in _make(project, "-n", "test").stdout


def test_the_vllm_venv_is_set_up_again_only_after_its_pin_or_fixes_change(project):
    for name in VLLM_INPUTS:
        _set_mtime(project / "packaging" / "vllm" / name, 1_000_000)
    stamp = project / ".venv-vllm" / ".installed"
    stamp.touch()
    _set_mtime(stamp, 2_000_000)
    assert VLLM_SETUP not in _make(project, "-n", "vllm-venv").stdout
    # An edit to the app's dependencies reinstalls the app only.
    _set_mtime(project / "pyproject.toml", 3_000_000)
    assert VLLM_SETUP not in _make(project, "-n", "test").stdout
    for name in VLLM_INPUTS:
        edited = project / "packaging" / "vllm" / name
        _set_mtime(edited, 3_000_000)  # a new pin, or a changed fix
        assert VLLM_SETUP in _make(project, "-n", "vllm-venv").stdout, name
        _set_mtime(edited, 1_000_000)


def test_distclean_removes_both_venvs(project):
    lines = _make(project, "-n", "distclean").stdout.splitlines()
    assert "rm -rf .venv .venv-vllm" in lines


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
