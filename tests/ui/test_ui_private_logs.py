"""Log files and crash reports are private (0600), like the rest of the data folder."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from app.core import paths
from app.ui.shell.application import CrashReporter, setup_logging

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_logs_and_crash_reports_are_private(tmp_path: Path, qtbot) -> None:
    previous = os.umask(0o022)  # privacy must come from our code, not the umask
    try:
        _check(tmp_path)
    finally:
        os.umask(previous)


def _check(tmp_path: Path) -> None:
    log_dir = paths.logs_dir(paths.data_dir(tmp_path / "data"))
    root = logging.getLogger()
    before = list(root.handlers)
    setup_logging(log_dir)
    try:
        logging.getLogger("scout-test").warning("a line for the log")
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
            handler.close()
    assert _mode(log_dir / "scout-desk.log") == 0o600
    report = CrashReporter(log_dir, show_dialog=False).write_report("Traceback: boom")
    assert report is not None and _mode(report) == 0o600
