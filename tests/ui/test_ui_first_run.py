"""First run without a model: the welcome panel, Send keeping the text, settings and themes."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QFileDialog

from app.core.settings import Settings, load_settings
from app.inference.engine import ModelError
from app.inference.scripted import ScriptedEngine
from app.ui.shell.application import default_engine_factory
from app.ui.shell.main_window import NO_MODEL_NOTICE
from app.ui.shell.settings_dialog import SettingsDialog
from app.ui.widgets.theme import apply_theme


def test_without_a_model_the_welcome_shows_and_send_keeps_the_text(
    qtbot, open_window, monkeypatch, tmp_path, data_dir
):
    window = open_window(requires_model_dir=True, factory=lambda _s: ScriptedEngine(["Hi!"]))
    assert window.stack.currentWidget() is window.welcome
    assert window.status.engine_label.text() == "No model chosen"
    editor = window.composer.editor
    editor.setFocus()
    qtbot.keyClicks(editor, "Is anyone there?")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert window.composer.text() == "Is anyone there?"
    assert window.composer.notice.isVisibleTo(window)
    assert window.composer.notice.text() == NO_MODEL_NOTICE
    assert window._store.list_sessions() == []

    # "Choose model folder…" saves the choice, hides the welcome and starts the engine.
    model_dir = tmp_path / "scout"
    model_dir.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(model_dir))
    window.welcome.choose_button.click()
    assert window.stack.currentWidget() is window.chat_view
    assert load_settings(data_dir / "settings.json")[0].model_dir == str(model_dir)
    assert window.composer.text() == "Is anyone there?"
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=10_000)
    messages = window._store.messages(window.controller.session_id)
    assert [m.text for m in messages] == ["Is anyone there?", "Hi!"]


def test_a_failed_model_load_is_explained_and_the_text_is_kept(qtbot, open_window):
    def broken(_settings: Settings) -> ScriptedEngine:
        raise ModelError("The folder /models/scout has no config.json.")

    window = open_window(factory=broken)
    qtbot.waitUntil(lambda: "no config.json" in window.status.engine_label.toolTip(), timeout=5000)
    assert "not available" in window.status.engine_label.text()
    window.composer.set_text("Hello?")
    assert not window.controller.send()
    assert window.composer.text() == "Hello?"
    assert "no config.json" in window.composer.notice.text()


def test_default_factory_builds_the_local_engine_from_the_settings(tmp_path):
    from app.inference.local_engine import LocalLlama4Engine

    engine = default_engine_factory(
        Settings(model_dir=str(tmp_path), quantization="int8", kv_cache="int8")
    )
    assert isinstance(engine, LocalLlama4Engine)
    assert (engine.model_dir, engine.quantization, engine.kv_cache) == (tmp_path, "int8", "int8")
    with pytest.raises(ModelError, match="No model folder is chosen"):
        default_engine_factory(Settings(model_dir=""))


def test_settings_dialog_edits_and_saves_settings(qtbot, open_window, data_dir):
    window = open_window()
    dialog = SettingsDialog(Settings(), data_dir)
    qtbot.addWidget(dialog)
    assert dialog.data_dir_edit.isReadOnly()
    assert dialog.data_dir_edit.text() == str(data_dir)
    assert dialog.quant_combo.currentData() == "nf4"
    dialog.model_edit.setText("/models/scout")
    dialog.quant_combo.setCurrentIndex(dialog.quant_combo.findData("int8"))
    dialog.max_tokens_spin.setValue(256)
    dialog.temperature_spin.setValue(0.2)
    dialog.top_p_spin.setValue(0.8)
    dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData("dark"))
    assert dialog.kv_combo.currentData() == "bf16"
    dialog.kv_combo.setCurrentIndex(dialog.kv_combo.findData("int8"))
    assert dialog.head_combo.currentData() == "bf16"
    dialog.head_combo.setCurrentIndex(dialog.head_combo.findData("int8"))
    chosen = dialog.settings()
    assert chosen == replace(
        Settings("/models/scout", "int8", 256, 0.2, 0.8, "dark"), kv_cache="int8",
        output_head="int8",
    )  # fmt: skip

    assert window.apply_settings(chosen)
    assert load_settings(data_dir / "settings.json") == (chosen, [])
    window_colour = QApplication.instance().palette().color(QPalette.ColorRole.Window)
    assert window_colour.lightness() < 100  # dark theme applied live
    apply_theme(QApplication.instance(), "light")


def test_cancel_reverts_a_live_theme_preview(qtbot, data_dir):
    dialog = SettingsDialog(Settings(theme="light"), data_dir)
    qtbot.addWidget(dialog)
    seen: list[str] = []
    dialog.theme_previewed.connect(seen.append)
    dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData("dark"))
    dialog.reject()
    assert seen == ["dark", "light"]


def test_sampling_settings_reach_the_engine(qtbot, open_window):
    settings = replace(Settings(), max_new_tokens=3, temperature=0.0, top_p=0.5)
    window = open_window(["one two three four five six"], settings=settings)
    window.composer.set_text("count")
    window.controller.send()
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=10_000)
    request = window.engine.requests[0]
    assert (request.max_new_tokens, request.temperature, request.top_p) == (3, 0.0, 0.5)
    answer = window._store.messages(window.controller.session_id)[-1]
    assert answer.text == "one two three "
    assert answer.stop_reason.value == "length"
