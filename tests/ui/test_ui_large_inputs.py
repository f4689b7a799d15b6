"""Large inputs in the window: a 10 MB text file read off the GUI thread; limits in Settings."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QTimer

from app.core.messages import AttachmentStatus
from app.core.settings import Settings
from app.ui.shell.settings_dialog import SettingsDialog
from tests.helpers.offscreen import drop_files

LINE = "The quick brown fox jumps over the lazy dog, line {n:07d}.\n"


def _text_file(path: Path, size: int) -> Path:
    """A plain UTF-8 text file of at least `size` bytes."""
    line_count = size // len(LINE.format(n=0)) + 1
    path.write_text("".join(LINE.format(n=n) for n in range(line_count)), encoding="utf-8")
    return path


def _wait_read(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.composer.chips.is_reading(), timeout=30_000)


def test_a_10_mb_text_file_is_read_whole_and_counted_while_the_gui_runs(
    qtbot, open_window, tmp_path
):
    big = _text_file(tmp_path / "big.log", 10_000_000)
    size = big.stat().st_size
    window = open_window()
    meter = window.documents.meter
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()

    drop_files(window, [big])
    _wait_read(qtbot, window)
    (chip,) = window.composer.chips.chips()
    assert chip.attachment is not None
    assert chip.attachment.status is AttachmentStatus.READY, chip.attachment.detail
    assert chip.attachment.size == size
    qtbot.waitUntil(
        lambda: not meter.busy() and meter.estimate is not None and meter.estimate.text_tokens > 0,
        timeout=30_000,
    )
    timer.stop()

    assert meter.estimate.text_tokens > 1_000_000  # about 10 MB of text, estimated
    # The event loop kept turning while the file was read and counted on the pool.
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert len(ticks) > 5
    assert max(gaps) < 1.0, f"the GUI thread stalled for {max(gaps):.2f} s"


def test_a_text_limit_lowered_in_settings_applies_to_the_next_drop(
    qtbot, open_window, tmp_path, data_dir
):
    two_mb = _text_file(tmp_path / "two.txt", 2_000_000)
    window = open_window()
    assert window.apply_settings(replace(window.effective_settings(), max_text_mb=1))
    assert json.loads((data_dir / "settings.json").read_text("utf-8"))["max_text_mb"] == 1

    drop_files(window, [two_mb])
    _wait_read(qtbot, window)

    (chip,) = window.composer.chips.chips()
    assert chip.attachment is not None
    assert chip.attachment.status is AttachmentStatus.ERROR
    assert chip.attachment.detail == (
        "“two.txt” is 2.0 MB; Scout Desk reads text files up to 1.0 MB "
        "(the text file limit, set in Settings → Limits)."
    )


def test_the_settings_dialog_edits_the_three_limits(qtbot, tmp_path):
    dialog = SettingsDialog(Settings(max_text_mb=8), tmp_path)
    qtbot.addWidget(dialog)
    assert dialog.max_text_spin.value() == 8
    assert (dialog.max_text_spin.minimum(), dialog.max_text_spin.maximum()) == (1, 1024)
    assert (dialog.max_folder_spin.minimum(), dialog.max_folder_spin.maximum()) == (1, 4096)
    assert (dialog.max_files_spin.minimum(), dialog.max_files_spin.maximum()) == (100, 200_000)

    dialog.max_text_spin.setValue(128)
    dialog.max_folder_spin.setValue(500)
    dialog.max_files_spin.setValue(50_000)

    chosen = dialog.settings()
    assert (chosen.max_text_mb, chosen.max_folder_mb, chosen.max_folder_files) == (128, 500, 50_000)
    dialog.done(0)
