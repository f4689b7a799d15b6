"""Start-up: the probe line, a lean import path, fatal start-up errors, and the crash reporter."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from PySide6.QtGui import QGuiApplication

from app.ui.shell.application import CrashReporter

ROOT = Path(__file__).resolve().parents[2]
PROBE = re.compile(r"^window-shown \d+\.\d+ torch_loaded=0 transformers_loaded=0$")
HEAVY = ("torch", "transformers", "bitsandbytes", "cv2", "pypdfium2", "accelerate")

# Runs the real GUI path with the probe on, then reports which heavy modules got imported.
_LEAN_SCRIPT = f"""
import json, sys
from app.cli import main
code = main([])
print(json.dumps({{"code": code, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def _env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        SCOUT_DESK_STARTUP_PROBE="1",
        SCOUT_DESK_DATA_DIR=str(data_dir),
        PYTHONPATH=str(ROOT),
    )
    return env


def _run(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT, env=_env(data_dir), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _probe_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("window-shown")]


def test_main_py_shows_the_window_prints_one_probe_line_and_exits_0(tmp_path):
    result = _run(["main.py"], tmp_path / "data")
    assert result.returncode == 0, result.stderr
    lines = _probe_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert PROBE.match(lines[0]), lines[0]


def test_window_shows_without_torch_transformers_or_bitsandbytes(tmp_path):
    result = _run(["-c", _LEAN_SCRIPT], tmp_path / "data")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}
    assert len(_probe_lines(result.stderr)) == 1


def test_an_unusable_data_folder_exits_1_with_a_sentence(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be", encoding="utf-8")
    result = _run(["main.py"], blocker)
    assert result.returncode == 1
    assert "not a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_corrupt_database_exits_1_with_a_sentence(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "sessions.sqlite3").write_bytes(b"this is not a database" * 100)
    result = _run(["main.py"], data)
    assert result.returncode == 1
    assert "sessions.sqlite3" in result.stderr
    assert "Traceback" not in result.stderr
    assert _probe_lines(result.stderr) == []


def test_crash_reporter_logs_the_traceback_and_shows_a_copyable_dialog(qtbot, tmp_path):
    reporter = CrashReporter(tmp_path / "logs")
    reporter.install()
    try:
        assert sys.excepthook == reporter.handle
        try:
            raise ZeroDivisionError("boom in a slot")
        except ZeroDivisionError as exc:
            with qtbot.waitSignal(reporter.crashed) as blocker:
                sys.excepthook(type(exc), exc, exc.__traceback__)
    finally:
        reporter.uninstall()
    assert sys.excepthook is not reporter.handle
    report, log_file = blocker.args
    assert "ZeroDivisionError: boom in a slot" in report
    assert "Traceback" in Path(log_file).read_text(encoding="utf-8")
    qtbot.waitUntil(lambda: reporter.dialog is not None and reporter.dialog.isVisible())
    dialog = reporter.dialog
    assert "boom in a slot" in dialog.details.toPlainText()
    dialog.copy_details()
    assert "ZeroDivisionError" in QGuiApplication.clipboard().text()
    dialog.close()
    dialog.deleteLater()


def test_crash_reporter_catches_exceptions_of_other_threads(qtbot, tmp_path):
    reporter = CrashReporter(tmp_path / "logs", show_dialog=False)
    reporter.install()
    try:
        with qtbot.waitSignal(reporter.crashed) as blocker:
            thread = threading.Thread(target=lambda: 1 / 0, name="doomed")
            thread.start()
            thread.join()
    finally:
        reporter.uninstall()
    assert "ZeroDivisionError" in blocker.args[0]
    assert len(list((tmp_path / "logs").glob("crash-*.log"))) == 1
