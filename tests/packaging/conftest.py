"""Load the stdlib scripts under packaging/ and bench/ by path (neither folder is a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(relative: str) -> ModuleType:
    # A unique module name: "packaging" itself is the PyPI library pytest depends on.
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(f"scout_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's top folder."""
    return ROOT


@pytest.fixture(scope="session")
def qt_libs() -> ModuleType:
    """packaging/check_qt_libs.py as a module."""
    return _load("packaging/check_qt_libs.py")


@pytest.fixture(scope="session")
def desktop() -> ModuleType:
    """packaging/install_desktop.py as a module."""
    return _load("packaging/install_desktop.py")


@pytest.fixture(scope="session")
def startup_bench() -> ModuleType:
    """bench/startup.py as a module."""
    return _load("bench/startup.py")
