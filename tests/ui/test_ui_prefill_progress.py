"""A long prompt's reading shows in the status bar: "Reading 8,192 / 24,576 tokens…"."""

from __future__ import annotations

from collections.abc import Generator

from PySide6.QtCore import Qt

from app.inference.engine import CancelToken, GenerationRequest, GenerationResult
from app.inference.scripted import ScriptedEngine


class ReadingEngine(ScriptedEngine):
    """Reports a segmented prefill of 24,576 tokens, 8,192 at a time, before answering."""

    total = 24_576

    def __init__(self) -> None:
        super().__init__(["Read it all."])
        self.prefill_progress = None  # set by the worker around each answer, as for Llama 4

    def generate(
        self, request: GenerationRequest, cancel: CancelToken
    ) -> Generator[str, None, GenerationResult]:
        report = self.prefill_progress
        for done in range(0, self.total + 1, 8192):
            if report is not None:
                report(done, self.total)
        return (yield from super().generate(request, cancel))


def test_the_status_bar_counts_the_tokens_read(qtbot, open_window):
    window = open_window(engine=ReadingEngine())
    shown: list[str] = []
    # Connected after the window's own slot, so each entry is what the status bar then said.
    window.controller.prefill_progressed.connect(
        lambda _done, _total: shown.append(window.status.engine_label.text())
    )
    window.composer.editor.setFocus()
    qtbot.keyClicks(window.composer.editor, "Read this long thing")
    with qtbot.waitSignal(window.controller.answer_finished, timeout=10_000):
        qtbot.keyClick(window.composer.editor, Qt.Key.Key_Return)
    assert shown[:3] == [
        "Reading 0 / 24,576 tokens…",
        "Reading 8,192 / 24,576 tokens…",
        "Reading 16,384 / 24,576 tokens…",
    ]
    assert shown[-1] == "Model: writing…"  # all read: the answer is being written
    assert window.engine.prefill_progress is None  # the worker does not leave its callback
