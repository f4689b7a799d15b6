"""A Qt list model over `SessionInfo` rows: the sidebar's session list (and its trash view)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from app.core.messages import SessionInfo
from app.ui.widgets.plain_text import plain_html

_Index = QModelIndex | QPersistentModelIndex

SESSION_ROLE = Qt.ItemDataRole.UserRole + 1  # the row's SessionInfo
SESSION_ID_ROLE = Qt.ItemDataRole.UserRole + 2  # the row's session id (str)
SUBTITLE_ROLE = Qt.ItemDataRole.UserRole + 3  # "3 messages · 14:05"


class SessionListModel(QAbstractListModel):
    """Read-mostly adapter: the store stays the source of truth, the model mirrors a list of it.

    Editing a title (inline rename) does not write anywhere: it asks, through `title_edited`,
    and the owner renames in the store and calls `set_sessions` again.
    """

    #: (session_id, new_title) the user typed into the inline editor.
    title_edited = Signal(str, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sessions: list[SessionInfo] = []

    def set_sessions(self, sessions: Sequence[SessionInfo]) -> None:
        """Replace every row.

        Args:
            sessions: the rows, in display order.
        """
        self.beginResetModel()
        self._sessions = list(sessions)
        self.endResetModel()

    def session_at(self, row: int) -> SessionInfo | None:
        """The session shown at `row`, or None outside the list."""
        return self._sessions[row] if 0 <= row < len(self._sessions) else None

    def row_of(self, session_id: str) -> int:
        """The row of a session id, or -1 when it is not listed."""
        for row, info in enumerate(self._sessions):
            if info.id == session_id:
                return row
        return -1

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008, N802 (Qt API)
        return 0 if parent.isValid() else len(self._sessions)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        info = self.session_at(index.row()) if index.isValid() else None
        if info is None:
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return info.title or "Untitled chat"
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_html(f"{info.title}\n{_subtitle(info)}")
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"Chat: {info.title}, {_subtitle(info)}"
        if role == SESSION_ROLE:
            return info
        if role == SESSION_ID_ROLE:
            return info.id
        if role == SUBTITLE_ROLE:
            return _subtitle(info)
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (
            Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsSelectable
            | Qt.ItemFlag.ItemIsEditable
            | Qt.ItemFlag.ItemNeverHasChildren
        )

    def setData(  # noqa: N802 (Qt API)
        self, index: _Index, value: object, role: int = Qt.ItemDataRole.EditRole
    ) -> bool:
        info = self.session_at(index.row()) if index.isValid() else None
        if info is None or role != Qt.ItemDataRole.EditRole or not isinstance(value, str):
            return False
        title = " ".join(value.split())
        if not title or title == info.title:
            return False
        self.title_edited.emit(info.id, title)
        return True


def _subtitle(info: SessionInfo) -> str:
    """A short second line: message count and when the chat last changed."""
    count = info.message_count
    noun = "message" if count == 1 else "messages"
    return f"{count} {noun} · {_when(info.trashed_at or info.updated_at)}"


def _when(stamp: float) -> str:
    """Today's times as HH:MM, this year's as "3 Mar", older ones with the year."""
    now = time.localtime()
    then = time.localtime(stamp)
    if then[:3] == now[:3]:
        return time.strftime("%H:%M", then)
    if then.tm_year == now.tm_year:
        return time.strftime("%d %b", then).lstrip("0")
    return time.strftime("%d %b %Y", then).lstrip("0")
