"""The window driving the real Llama 4 engine (tiny random model): stream, Stop, close mid-load."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.core.messages import Role, StopReason
from app.core.settings import Settings
from app.ui.shell.application import default_engine_factory
from app.ui.shell.main_window import MainWindow

pytestmark = pytest.mark.slow


def _window(open_window, tiny_model: Path, max_new_tokens: int) -> MainWindow:
    settings = Settings(
        model_dir=str(tiny_model), quantization="bf16", max_new_tokens=max_new_tokens
    )
    return open_window(settings=settings, factory=default_engine_factory, requires_model_dir=True)


def _send(qtbot, window: MainWindow, text: str) -> None:
    window.composer.editor.setFocus()
    qtbot.keyClicks(window.composer.editor, text)
    qtbot.keyClick(window.composer.editor, Qt.Key.Key_Return)


def test_answers_stream_in_and_stop_ends_them_early(
    qtbot, open_window, open_store, endless_tiny_model
):
    window = _window(open_window, endless_tiny_model, max_new_tokens=2000)
    _send(qtbot, window, "Tell me a long story")
    # The first streamed text arrives from the real model on the worker thread...
    qtbot.waitUntil(lambda: len(window.controller.last_answer()) > 0, timeout=120_000)
    qtbot.keyClick(window.composer.editor, Qt.Key.Key_Escape)  # ...and Esc stops it.
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=30_000)

    session_id = window.controller.session_id
    question, answer = open_store().messages(session_id)
    assert (question.role, question.text) == (Role.USER, "Tell me a long story")
    assert answer.stop_reason is StopReason.CANCELLED
    assert answer.timings is not None
    assert 0 < answer.timings.completion_tokens < 2000


def test_closing_while_the_model_loads_exits_cleanly_and_keeps_the_question(
    qtbot, open_window, open_store, tiny_model
):
    window = _window(open_window, tiny_model, max_new_tokens=8)
    _send(qtbot, window, "Are you there?")
    session_id = window.controller.session_id
    window.close()  # cancels the load or the answer, joins the worker thread

    messages = open_store().messages(session_id)
    assert messages[0].text == "Are you there?"
    # Whatever stage it reached, nothing is left looking unfinished.
    assert all(m.stop_reason is not None for m in messages if m.role is Role.ASSISTANT)
