"""The sidebar over a real store: list, rename, trash with Undo, restore, empty trash, search."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from app.core.messages import StopReason
from app.ui.chat.session_list_model import SESSION_ID_ROLE


def _chat(store, title: str, question: str, answer: str) -> str:
    session = store.create_session(title)
    store.add_user_message(session.id, question)
    reply = store.begin_assistant_message(session.id)
    store.finish_message(reply.id, answer, StopReason.EOS)
    return session.id


def _listed(sidebar) -> list[str]:
    model = sidebar.model
    return [model.index(row, 0).data(SESSION_ID_ROLE) for row in range(model.rowCount())]


def test_rename_inline_trash_undo_and_empty_trash(qtbot, open_window, monkeypatch):
    window = open_window()
    store = window._store
    first = _chat(store, "Trip", "Where was this?", "In the mountains.")
    second = _chat(store, "Receipt", "What is the total?", "42 euros.")
    sidebar = window.sidebar
    sidebar.refresh()
    assert set(_listed(sidebar)) == {first, second}

    # Rename through the model, as the inline editor does.
    sidebar.model.setData(sidebar.model.index(sidebar.model.row_of(first), 0), "Alps trip")
    assert store.get_session(first).title == "Alps trip"

    # Trash the open chat: it closes, and the status bar offers Undo.
    window.controller.open_session(first)
    sidebar.trash_session(first)
    assert first not in _listed(sidebar)
    assert window.controller.session_id is None
    assert window.status.undo_button.isVisibleTo(window)
    assert "Alps trip" in window.status.undo_label.text()
    window.status.undo_button.click()
    assert first in _listed(sidebar)
    assert store.get_session(first).trashed_at is None

    # Trash again; the trash view lists it and restores it; Empty trash deletes for good.
    sidebar.trash_session(second)
    sidebar.show_trash(True)
    assert _listed(sidebar) == [second]
    assert sidebar.empty_trash_button.isVisibleTo(window)
    sidebar.restore_session(second)
    assert _listed(sidebar) == []
    sidebar.show_trash(False)
    sidebar.trash_session(second)
    sidebar.show_trash(True)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    sidebar.empty_trash_button.click()
    assert _listed(sidebar) == []
    assert store.get_session(second) is None
    sidebar.show_trash(False)
    assert _listed(sidebar) == [first]


def test_search_shows_hits_and_a_click_opens_the_chat(qtbot, open_window):
    window = open_window()
    store = window._store
    _chat(store, "Cats", "Is this a tabby cat?", "Yes, a tabby.")
    target = _chat(store, "Bills", "Read the invoice number", "Invoice 7781-XZ.")
    sidebar = window.sidebar
    sidebar.refresh()

    sidebar.search_edit.setText("invoice")
    hits = sidebar.search_now()
    assert {h.session_id for h in hits} == {target}
    assert sidebar.hits_list.isVisibleTo(window)
    assert "Bills" in sidebar.hits_list.item(0).text()
    with qtbot.waitSignal(sidebar.search_hit_activated):
        sidebar.hits_list.itemClicked.emit(sidebar.hits_list.item(0))
    assert window.controller.session_id == target
    assert len(window.chat_view.message_ids()) == 2

    sidebar.search_edit.setText('"unbalanced * OR (')
    sidebar.search_now()  # any text is safe
    sidebar.search_edit.clear()
    sidebar.search_now()
    assert sidebar.list_view.isVisibleTo(window)


def test_new_chat_button_clears_the_view(qtbot, open_window):
    window = open_window()
    chat = _chat(window._store, "Old", "q", "a")
    window.sidebar.refresh()
    window.controller.open_session(chat)
    assert window.chat_view.message_ids()
    window.sidebar.new_button.click()
    assert window.controller.session_id is None
    assert window.chat_view.message_ids() == []
    assert not window.sidebar.list_view.selectionModel().hasSelection()
