"""An end-to-end scripted conversation through the real window, store and worker thread."""

from __future__ import annotations

import json
import sqlite3

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from app.core.messages import AttachmentStatus, Role, StopReason
from app.ui.shell.main_window import MainWindow
from tests.helpers.offscreen import drop_files

LONG_REPLY = " ".join(f"word{i}" for i in range(400))


def _type_and_send(qtbot, window: MainWindow, text: str) -> None:
    editor = window.composer.editor
    editor.setFocus()
    qtbot.keyClicks(editor, text)
    qtbot.keyClick(editor, Qt.Key.Key_Return)


def _wait_idle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=10_000)


def _button(window: MainWindow, message_id: str, accessible_name: str) -> QPushButton:
    bubble = window.chat_view.message_widget(message_id)
    assert bubble is not None
    found = [b for b in bubble.findChildren(QPushButton) if b.accessibleName() == accessible_name]
    assert found, f"no {accessible_name!r} button on message {message_id}"
    return found[0]


def test_send_stop_regenerate_edit_restart_and_export(qtbot, open_window, tmp_path):
    replies = ["A small orange picture.", LONG_REPLY, "Regenerated answer.", "Edited answer."]
    window = open_window(replies, chunk_delay_s=0.003)
    engine = window.engine
    picture = tmp_path / "orange.png"
    Image.new("RGB", (64, 40), (230, 120, 30)).save(picture)

    # 1. A question with a dropped picture: saved before the answer, the picture marked used.
    drop_files(window, [picture])
    qtbot.waitUntil(lambda: bool(window.composer.chips.ready_attachments()), timeout=10_000)
    _type_and_send(qtbot, window, "What is in the picture?")
    assert window.composer.text() == ""
    session_id = window.controller.session_id
    assert session_id is not None
    _wait_idle(qtbot, window)
    store = window._store
    first_user, first_answer = store.messages(session_id)
    assert first_user.text == "What is in the picture?"
    assert [a.status for a in first_user.attachments] == [AttachmentStatus.USED]
    assert first_answer.text == "A small orange picture."
    assert first_answer.stop_reason is StopReason.EOS
    assert engine.requests[0].turns[0].images  # the picture went to the engine

    # 2. A long answer, stopped with Esc mid-way: the partial text is kept, marked cancelled.
    window.activateWindow()
    _type_and_send(qtbot, window, "Tell me more")
    qtbot.waitUntil(lambda: len(window.controller.last_answer()) > 20, timeout=10_000)
    assert window.composer.stop_button.isVisibleTo(window)
    qtbot.keyClick(window.composer.editor, Qt.Key.Key_Escape)
    _wait_idle(qtbot, window)
    stopped = store.messages(session_id)[-1]
    assert stopped.stop_reason is StopReason.CANCELLED
    assert stopped.text and LONG_REPLY.startswith(stopped.text) and stopped.text != LONG_REPLY
    assert window.composer.send_button.isVisibleTo(window)

    # 3. Regenerate the stopped answer: the engine gets the history without it.
    _button(window, stopped.id, "Regenerate answer").click()
    _wait_idle(qtbot, window)
    texts = [m.text for m in store.messages(session_id)]
    assert texts[-1] == "Regenerated answer."
    assert LONG_REPLY[:20] not in " ".join(texts)
    assert [t.text for t in engine.requests[2].turns][-1] == "Tell me more"
    assert len(engine.requests[2].turns) == 3

    # 4. Edit & resend the first question: everything after it is replaced.
    _button(window, first_user.id, "Edit and resend message").click()
    assert window.composer.text() == "What is in the picture?"
    assert window.composer.editing
    assert [c.state for c in window.composer.chips.chips()] == ["ready"]
    window.composer.set_text("What colour is the picture?")
    qtbot.keyClick(window.composer.editor, Qt.Key.Key_Return)
    _wait_idle(qtbot, window)
    final = store.messages(session_id)
    assert [(m.role, m.text) for m in final] == [
        (Role.USER, "What colour is the picture?"),
        (Role.ASSISTANT, "Edited answer."),
    ]
    assert final[0].attachments[0].name == "orange.png"
    assert [t.text for t in engine.requests[3].turns] == ["What colour is the picture?"]
    assert window.chat_view.message_ids() == [m.id for m in final]

    # 5. Close, "restart" on the same data folder, reopen the chat from the sidebar.
    window.close()
    again = open_window()
    assert again.controller.session_id is None
    row = again.sidebar.model.row_of(session_id)
    assert row >= 0
    again.sidebar.list_view.clicked.emit(again.sidebar.model.index(row, 0))
    assert again.controller.session_id == session_id
    assert again.chat_view.message_ids() == [m.id for m in final]
    assert again.chat_view.message_widget(final[1].id).text == "Edited answer."

    # 6. Export in all three formats.
    for fmt in ("md", "html", "json"):
        dest = tmp_path / f"chat.{fmt}"
        assert again.sidebar.export_session(session_id, fmt, dest) == dest
        content = dest.read_text(encoding="utf-8")
        assert "What colour is the picture?" in content
        assert "Edited answer." in content
    exported = json.loads((tmp_path / "chat.json").read_text(encoding="utf-8"))
    assert isinstance(exported, dict)


def test_closing_mid_answer_saves_the_partial_answer(qtbot, open_window, open_store):
    window = open_window([LONG_REPLY], chunk_delay_s=0.003)
    _type_and_send(qtbot, window, "Write a lot")
    qtbot.waitUntil(lambda: len(window.controller.last_answer()) > 20, timeout=10_000)
    session_id = window.controller.session_id
    window.close()  # cancels, saves, joins the worker thread

    messages = open_store().messages(session_id)
    assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT]
    answer = messages[1]
    assert answer.stop_reason is StopReason.CANCELLED
    assert answer.text.startswith("word0 word1")
    assert answer.text != LONG_REPLY


def test_engine_failure_is_shown_on_the_message_and_in_the_status_bar(qtbot, open_window):
    from app.inference.engine import OutOfMemoryError
    from app.inference.scripted import ScriptedEngine

    engine = ScriptedEngine(fail_with=OutOfMemoryError("The GPU ran out of memory."))
    window = open_window(engine=engine)
    _type_and_send(qtbot, window, "Describe everything")
    _wait_idle(qtbot, window)
    answer = window._store.messages(window.controller.session_id)[-1]
    assert answer.stop_reason is StopReason.ERROR
    assert answer.error == "The GPU ran out of memory."
    assert "ran out of memory" in window.status.currentMessage()
    bubble = window.chat_view.message_widget(answer.id)
    assert "ran out of memory" in " ".join(
        label.text() for label in bubble.findChildren(type(window.status.engine_label))
    )


def test_checkpoints_save_streamed_text_while_answering(qtbot, open_window):
    window = open_window([LONG_REPLY], chunk_delay_s=0.003)
    _type_and_send(qtbot, window, "Stream please")
    qtbot.waitUntil(lambda: len(window.controller.last_answer()) > 20, timeout=10_000)
    window.controller.checkpoint()
    stored = window._store.messages(window.controller.session_id)[-1]
    assert stored.stop_reason is None
    assert stored.text and LONG_REPLY.startswith(stored.text)
    window.controller.stop()
    _wait_idle(qtbot, window)


def test_a_checkpoint_that_cannot_save_tells_the_user_once(qtbot, open_window):
    window = open_window([LONG_REPLY], chunk_delay_s=0.003)
    _type_and_send(qtbot, window, "Stream please")
    qtbot.waitUntil(lambda: len(window.controller.last_answer()) > 20, timeout=10_000)
    window.controller.checkpoint()
    stored = window._store.messages(window.controller.session_id)[-1]
    # Closed behind the window's back (a program without writer leases, or a bug): the next
    # checkpoint saves nothing, which must never pass in silence.
    conn = sqlite3.connect(window._store.path)
    conn.execute("UPDATE messages SET stop_reason = 'cancelled' WHERE id = ?", (stored.id,))
    conn.commit()
    conn.close()
    posted: list[str] = []
    window.controller.message_posted.connect(posted.append)
    qtbot.waitUntil(lambda: len(window.controller.last_answer()) > len(stored.text) + 20)
    window.controller.checkpoint()
    qtbot.waitUntil(lambda: len(window.controller.last_answer()) > len(stored.text) + 60)
    window.controller.checkpoint()
    assert [p for p in posted if "not being saved" in p] == [posted[0]], posted
    window.controller.stop()
    _wait_idle(qtbot, window)


def test_copy_last_answer_shortcut(qtbot, open_window):
    window = open_window(["Copy me."])
    _type_and_send(qtbot, window, "Say something")
    _wait_idle(qtbot, window)
    copy = next(
        a for a in window.findChildren(type(window.stop_action)) if a.objectName() == "copy"
    )
    assert copy.shortcut().toString() == "Ctrl+Shift+C"
    copy.trigger()
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == "Copy me."


def test_attachment_of_a_message_opens_a_preview_without_a_model(qtbot, open_window, tmp_path):
    picture = tmp_path / "p.png"
    Image.new("RGB", (30, 20), (0, 90, 200)).save(picture)
    window = open_window(["ok"])
    window.composer.attach_paths([picture])
    qtbot.waitUntil(lambda: bool(window.composer.chips.ready_attachments()), timeout=10_000)
    attachment = window.composer.chips.ready_attachments()[0]
    dialog = window.show_attachment(attachment)
    assert dialog is not None and dialog.isVisible()
    dialog.close()


def test_unsent_text_survives_closing_and_reopening_the_window(qtbot, open_window):
    window = open_window()
    qtbot.keyClicks(window.composer.editor, "half a question about the invoice")
    window.close()
    reopened = open_window()
    assert reopened.composer.text() == "half a question about the invoice"
    reopened.composer.clear()
    reopened.close()
    assert open_window().composer.text() == ""  # a sent or cleared draft is not brought back


def test_a_store_failure_on_edit_or_copy_becomes_a_notice(qtbot, open_window, monkeypatch):
    from app.store.db import StoreError

    window = open_window(["An answer."])
    _type_and_send(qtbot, window, "A question")
    _wait_idle(qtbot, window)
    question_id = window._store.messages(window.controller.session_id)[0].id

    def locked(_session_id):
        raise StoreError("sessions.sqlite3 is locked by another program.")

    monkeypatch.setattr(window._store, "messages", locked)
    with qtbot.waitSignal(window.controller.message_posted) as posted:
        window.controller.edit(question_id)  # no traceback: a sentence instead
    assert "locked" in posted.args[0]
    assert window.controller.last_answer() == ""
