"""Keyboard shortcuts, accessible names, the window title and files opened at start."""

from __future__ import annotations

from PIL import Image
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractButton,
    QLineEdit,
    QListView,
    QPlainTextEdit,
)

EXPECTED_SHORTCUTS = {
    "newChat": "Ctrl+N",
    "attach": "Ctrl+O",
    "find": "Ctrl+F",
    "settings": "Ctrl+,",
    "stop": "Esc",
    "copy": "Ctrl+Shift+C",
    "quit": "Ctrl+Q",
}


def _actions(window) -> dict[str, QAction]:
    return {a.objectName(): a for a in window.findChildren(QAction) if a.objectName()}


def test_title_and_shortcuts(open_window):
    window = open_window()
    assert window.windowTitle() == "Scout Desk"
    actions = _actions(window)
    shortcuts = {name: actions[name].shortcut().toString() for name in EXPECTED_SHORTCUTS}
    assert shortcuts == EXPECTED_SHORTCUTS


def test_shortcut_actions_do_what_they_say(qtbot, open_window):
    window = open_window(["An answer."])
    actions = _actions(window)
    actions["find"].trigger()
    assert window.focusWidget() is window.sidebar.search_edit
    window.composer.set_text("hello")
    window.controller.send()
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=10_000)
    assert window.controller.session_id is not None
    actions["newChat"].trigger()
    assert window.controller.session_id is None
    assert window.chat_view.message_ids() == []
    assert not actions["stop"].isEnabled()  # nothing to stop
    actions["quit"].trigger()
    assert not window.isVisible()


def test_every_control_has_an_accessible_name(open_window):
    window = open_window()
    controls = [
        w
        for kind in (QAbstractButton, QLineEdit, QPlainTextEdit, QListView)
        for w in window.findChildren(kind)
        if w.isVisibleTo(window)
    ]
    assert len(controls) >= 6
    unnamed = [
        f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}"
        for w in controls
        if not w.accessibleName()
    ]
    assert unnamed == []


def test_files_given_at_start_open_as_attachments_of_a_new_chat(qtbot, open_window, tmp_path):
    picture = tmp_path / "start.png"
    Image.new("RGB", (12, 12), (1, 2, 3)).save(picture)
    window = open_window()
    window.open_files([picture])
    qtbot.waitUntil(lambda: not window.composer.chips.is_reading(), timeout=10_000)
    assert window.controller.session_id is None
    assert [c.status_text for c in window.composer.chips.chips()] == ["ready"]


def test_model_menu_loads_and_unloads_the_engine(qtbot, open_window):
    window = open_window()
    engine = window.engine
    window.controller.load_model()
    qtbot.waitUntil(lambda: window.controller.engine_state == "ready", timeout=10_000)
    assert engine.loaded
    window.findChild(QAction, "unloadModel").trigger()
    qtbot.waitUntil(lambda: window.controller.engine_state == "not loaded", timeout=10_000)
    assert not engine.loaded
    window.findChild(QAction, "loadModel").trigger()
    qtbot.waitUntil(lambda: engine.loaded, timeout=10_000)
