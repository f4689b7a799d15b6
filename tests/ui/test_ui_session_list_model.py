"""The sidebar's session list model: a well-behaved Qt model over SessionInfo rows."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.core.messages import SessionInfo
from app.ui.chat.session_list_model import SESSION_ID_ROLE, SESSION_ROLE, SessionListModel


def _sessions(count: int) -> list[SessionInfo]:
    return [
        SessionInfo(f"id{i}", f"Chat {i}", 1_700_000_000.0 + i, 1_700_000_000.0 + i, i)
        for i in range(count)
    ]


def test_model_passes_qtmodeltester_through_resets(qtmodeltester):
    model = SessionListModel()
    qtmodeltester.check(model)
    model.set_sessions(_sessions(5))
    qtmodeltester.check(model)
    model.set_sessions([])
    qtmodeltester.check(model)


def test_rows_expose_title_id_and_session():
    model = SessionListModel()
    sessions = _sessions(3)
    model.set_sessions(sessions)
    index = model.index(1, 0)
    assert model.rowCount() == 3
    assert index.data(Qt.ItemDataRole.DisplayRole) == "Chat 1"
    assert index.data(SESSION_ID_ROLE) == "id1"
    assert index.data(SESSION_ROLE) == sessions[1]
    assert "1 message" in index.data(Qt.ItemDataRole.ToolTipRole)
    assert model.row_of("id2") == 2
    assert model.row_of("missing") == -1
    assert model.session_at(7) is None


def test_inline_rename_asks_the_owner_and_ignores_blank_titles(qtbot):
    model = SessionListModel()
    model.set_sessions(_sessions(2))
    index = model.index(0, 0)
    assert model.flags(index) & Qt.ItemFlag.ItemIsEditable
    with qtbot.waitSignal(model.title_edited) as blocker:
        assert model.setData(index, "  Holiday   photos ")
    assert blocker.args == ["id0", "Holiday photos"]
    with qtbot.assertNotEmitted(model.title_edited):
        assert not model.setData(index, "   ")
        assert not model.setData(index, "Chat 0")
