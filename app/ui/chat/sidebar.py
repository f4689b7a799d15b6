"""The session sidebar: search, "New chat", the chat list (rename, trash, export) and the trash."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from PySide6.QtCore import QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.messages import SearchHit
from app.store.db import StoreError
from app.store.sessions import SessionStore
from app.ui.chat.session_list_model import SESSION_ID_ROLE, SessionListModel
from app.ui.widgets.plain_text import plain_html

log = logging.getLogger(__name__)

EXPORT_FORMATS = {"md": "Markdown (*.md)", "html": "Web page (*.html)", "json": "JSON (*.json)"}
_HIT_ROLE = Qt.ItemDataRole.UserRole + 10
_SEARCH_DELAY_MS = 200


class Sidebar(QWidget):
    """Lists the store's chats and manages them; the conversation itself is someone else's.

    Args:
        store: the session store (the single source of truth; the list mirrors it).
    """

    #: str: the user opened a chat.
    session_activated = Signal(str)
    #: (session_id, message_id): the user clicked a search hit.
    search_hit_activated = Signal(str, str)
    #: the user asked for a new chat.
    new_chat_requested = Signal()
    #: (session_id, title): a chat went to the trash (the window offers Undo).
    session_trashed = Signal(str, str)
    #: str: a sentence for the status bar (export done, an error).
    message_posted = Signal(str)

    def __init__(self, store: SessionStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Sidebar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._store = store
        self._showing_trash = False
        self._current_id: str | None = None

        self.search_edit = QLineEdit(self)
        self.search_edit.setObjectName("SidebarSearch")
        self.search_edit.setPlaceholderText("Search chats  (Ctrl+F)")
        self.search_edit.setAccessibleName("Search chats")
        self.search_edit.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(_SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.search_now)
        self.search_edit.textChanged.connect(lambda _t: self._search_timer.start())
        self.search_edit.returnPressed.connect(self.search_now)

        self.new_button = QPushButton("+  New chat", self)
        self.new_button.setObjectName("NewChatButton")
        self.new_button.setAccessibleName("New chat")
        self.new_button.setToolTip("Start a new chat (Ctrl+N)")
        self.new_button.clicked.connect(self.new_chat_requested)

        self.model = SessionListModel(self)
        self.model.title_edited.connect(self.rename_session)
        self.list_view = QListView(self)
        self.list_view.setObjectName("SessionList")
        self.list_view.setAccessibleName("Chats")
        self.list_view.setModel(self.model)
        self.list_view.setUniformItemSizes(True)
        # Long titles end in "…" (the full title is the tooltip) rather than scrolling sideways.
        self.list_view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list_view.setEditTriggers(
            QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        self.list_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list_view.customContextMenuRequested.connect(self._on_list_view_context_menu)
        self.list_view.activated.connect(self._on_list_view_activated)
        self.list_view.clicked.connect(self._on_list_view_activated)

        self.hits_list = QListWidget(self)
        self.hits_list.setObjectName("SearchHits")
        self.hits_list.setAccessibleName("Search results")
        self.hits_list.setWordWrap(True)
        self.hits_list.itemActivated.connect(self._on_hits_list_item)
        self.hits_list.itemClicked.connect(self._on_hits_list_item)
        self._stack = QStackedWidget(self)
        self._stack.addWidget(self.list_view)
        self._stack.addWidget(self.hits_list)

        self.title_label = QLabel("Chats", self)
        self.title_label.setObjectName("SidebarTitle")
        self.trash_button = QPushButton("Trash", self)
        self.trash_button.setCheckable(True)
        self.trash_button.setFlat(True)
        self.trash_button.setAccessibleName("Show the trash")
        self.trash_button.toggled.connect(self.show_trash)
        self.empty_trash_button = QPushButton("Empty trash", self)
        self.empty_trash_button.setAccessibleName("Empty trash")
        self.empty_trash_button.clicked.connect(self._on_empty_trash_clicked)
        self.empty_trash_button.hide()
        bottom = QHBoxLayout()
        bottom.addWidget(self.trash_button)
        bottom.addStretch(1)
        bottom.addWidget(self.empty_trash_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 10, 8, 8)
        layout.setSpacing(6)
        layout.addWidget(self.search_edit)
        layout.addWidget(self.new_button)
        layout.addWidget(self.title_label)
        layout.addWidget(self._stack, 1)
        layout.addLayout(bottom)
        self.refresh()

    # -- list --------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the list from the store, keeping the open chat selected."""
        try:
            sessions = self._store.list_sessions(trashed=self._showing_trash)
        except StoreError as exc:
            self.message_posted.emit(exc.message)
            return
        self.model.set_sessions(sessions)
        self.select_session(self._current_id)

    def select_session(self, session_id: str | None) -> None:
        """Highlight a chat (None clears the highlight) without emitting anything."""
        self._current_id = session_id
        row = self.model.row_of(session_id) if session_id else -1
        selection = self.list_view.selectionModel()
        if row < 0:
            selection.clearSelection()
            return
        index = self.model.index(row, 0)
        selection.setCurrentIndex(index, selection.SelectionFlag.ClearAndSelect)

    def show_trash(self, show: bool) -> None:
        """Switch between the chats and the trash."""
        if self.trash_button.isChecked() != show:
            self.trash_button.setChecked(show)  # re-enters through `toggled`
            return
        self._showing_trash = show
        self.title_label.setText("Trash" if show else "Chats")
        self.trash_button.setText("◀  Back to chats" if show else "Trash")
        self.empty_trash_button.setVisible(show)
        self.search_edit.clear()
        self._stack.setCurrentWidget(self.list_view)
        self.refresh()

    # -- actions on chats --------------------------------------------------------------------

    def rename_session(self, session_id: str, title: str) -> None:
        """Rename a chat (from the inline editor or the context menu)."""
        if self._call(self._store.rename_session, session_id, title):
            self.refresh()

    def trash_session(self, session_id: str) -> None:
        """Move a chat to the trash; `session_trashed` lets the window offer Undo."""
        info = self._store.get_session(session_id)
        if info is not None and self._call(self._store.trash_session, session_id):
            self.refresh()
            self.session_trashed.emit(session_id, info.title)

    def restore_session(self, session_id: str) -> None:
        """Bring a chat back from the trash."""
        if self._call(self._store.restore_session, session_id):
            self.refresh()

    def empty_trash(self) -> int:
        """Delete every trashed chat for good; returns how many went."""
        try:
            count = self._store.empty_trash()
        except StoreError as exc:
            self.message_posted.emit(exc.message)
            return 0
        self.refresh()
        self.message_posted.emit(f"Deleted {count} chat{'s' if count != 1 else ''} for good.")
        return count

    def export_session(self, session_id: str, fmt: str, dest: Path | None = None) -> Path | None:
        """Export a chat as md, html or json; without `dest` a file dialog asks where.

        Returns:
            The file written, or None when cancelled or failed (a message says why).
        """
        if dest is None:
            info = self._store.get_session(session_id)
            stem = _safe_file_stem(info.title if info else "chat")
            chosen, _filter = QFileDialog.getSaveFileName(
                self, "Export chat", str(Path.home() / f"{stem}.{fmt}"), EXPORT_FORMATS[fmt]
            )
            if not chosen:
                return None
            dest = Path(chosen)
        from app.store.export import export_session  # only needed when the user exports

        try:
            export_session(self._store, session_id, fmt, dest)
        except (StoreError, OSError) as exc:
            reason = exc.message if isinstance(exc, StoreError) else (exc.strerror or str(exc))
            self.message_posted.emit(f"Could not export to {dest}: {reason}")
            return None
        self.message_posted.emit(f"Exported to {dest}.")
        return dest

    # -- search ------------------------------------------------------------------------------

    def focus_search(self) -> None:
        """Put the cursor in the search field (Ctrl+F)."""
        self.search_edit.setFocus()
        self.search_edit.selectAll()

    def search_now(self) -> list[SearchHit]:
        """Run the search for the field's text; an empty field shows the chat list again."""
        self._search_timer.stop()
        query = self.search_edit.text().strip()
        self.hits_list.clear()
        if not query:
            self._stack.setCurrentWidget(self.list_view)
            return []
        try:
            hits = self._store.search(query)
        except StoreError as exc:
            self.message_posted.emit(exc.message)
            hits = []
        for hit in hits:
            snippet = " ".join(hit.snippet.split())
            item = QListWidgetItem(f"{hit.session_title}\n{snippet}")
            item.setData(_HIT_ROLE, (hit.session_id, hit.message_id))
            item.setToolTip(plain_html(snippet))
            self.hits_list.addItem(item)
        if not hits:
            empty = QListWidgetItem("No messages match.")
            empty.setFlags(Qt.ItemFlag.NoItemFlags)
            self.hits_list.addItem(empty)
        self._stack.setCurrentWidget(self.hits_list)
        return hits

    # -- slots -------------------------------------------------------------------------------

    def _call(self, method: object, *args: object) -> bool:
        try:
            method(*args)  # type: ignore[operator]
        except StoreError as exc:
            self.message_posted.emit(exc.message)
            return False
        return True

    def _on_list_view_activated(self, index: QModelIndex) -> None:
        session_id = index.data(SESSION_ID_ROLE)
        if session_id and not self._showing_trash and session_id != self._current_id:
            self._current_id = session_id
            self.session_activated.emit(session_id)

    def _on_hits_list_item(self, item: QListWidgetItem) -> None:
        target = item.data(_HIT_ROLE)
        if target:
            self.search_hit_activated.emit(*target)

    def _on_empty_trash_clicked(self) -> None:
        if not self.model.rowCount():
            return
        answer = QMessageBox.question(
            self,
            "Empty trash",
            "Delete every chat in the trash for good? This cannot be undone.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.empty_trash()

    def _on_list_view_context_menu(self, pos: QPoint) -> None:
        index = self.list_view.indexAt(pos)
        session_id = index.data(SESSION_ID_ROLE) if index.isValid() else None
        if not session_id:
            return
        menu = QMenu(self)
        if self._showing_trash:
            menu.addAction("Restore", lambda: self.restore_session(session_id))
        else:
            menu.addAction("Rename", lambda: self.list_view.edit(index))
            export = menu.addMenu("Export")
            for fmt, label in EXPORT_FORMATS.items():
                export.addAction(label.split(" (")[0] + "…", _exporter(self, session_id, fmt))
            menu.addSeparator()
            menu.addAction("Move to trash", lambda: self.trash_session(session_id))
        menu.exec(self.list_view.viewport().mapToGlobal(pos))


def _exporter(sidebar: Sidebar, session_id: str, fmt: str):
    return lambda: sidebar.export_session(session_id, fmt)


def _safe_file_stem(title: str) -> str:
    """A file name from a chat title: no path separators or control characters."""
    stem = re.sub(r"[\\/:*?\"<>|\x00-\x1f]+", " ", title).strip(" .")
    return stem[:80] or "chat"
