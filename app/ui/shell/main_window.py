"""The main window: composes sidebar, chat view, composer, welcome panel and status bar."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app.core.drafts import load_draft, save_draft
from app.core.messages import Attachment, AttachmentKind
from app.core.settings import Settings, save_settings
from app.inference.engine import EngineStatus
from app.store.sessions import SessionStore
from app.ui.chat.controller import ChatController, EngineBuilder
from app.ui.chat.sidebar import Sidebar
from app.ui.composer.chips import preview_attachment
from app.ui.composer.composer import Composer, local_paths
from app.ui.documents.controller import DocumentsController
from app.ui.grounding.controller import GroundingController
from app.ui.shell.settings_dialog import SettingsDialog
from app.ui.shell.status_bar import StatusBar
from app.ui.shell.welcome import WelcomePanel
from app.ui.tasks.ingest_pool import IngestPool
from app.ui.transcript.view import ChatView
from app.ui.video.controller import VideoController
from app.ui.video.panel import VideoPanel
from app.ui.viewer.image_viewer import ImageViewer
from app.ui.widgets.plain_text import plain_message_box
from app.ui.widgets.theme import apply_theme

log = logging.getLogger(__name__)

APP_TITLE = "Scout Desk"
NO_MODEL_NOTICE = (
    "No model folder is chosen yet, so Scout Desk cannot answer. Choose the Llama 4 Scout folder "
    "in Settings (Ctrl+,); your message stays here until then."
)
NO_SERVER_NOTICE = (
    "The backend is a server, but no server URL is set. Type it in Settings (Ctrl+,); your "
    "message stays here until then."
)
_DROP_EVENTS = (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop)


class MainWindow(QMainWindow):
    """The one window, and the composition root: it builds every feature and wires them.

    The features (chat, grounding, documents, video) never import each other: each gets the
    shared surfaces it works on (store, transcript, composer, viewer) and, where it needs the
    chat, the chat as a `ChatPort`; their signals are connected here, in `_connect`.

    Args:
        store: the open session store (the caller closes it after the window).
        data_dir: the data folder (settings.json lives there).
        settings: the settings read at start.
        engine_factory: builds the engine from the settings in force, on the worker thread.
        model_override: a model folder from --model or SCOUT_DESK_MODEL (wins over settings).
        requires_model_dir: whether the engine needs a model folder (False for a scripted one).
    """

    def __init__(
        self,
        store: SessionStore,
        data_dir: Path,
        settings: Settings,
        engine_factory: EngineBuilder,
        *,
        model_override: Path | None = None,
        requires_model_dir: bool = True,
    ) -> None:
        super().__init__()
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.resize(1120, 760)
        self._store = store
        self._data_dir = data_dir
        self._settings = settings
        self._model_override = model_override
        self._requires_model_dir = requires_model_dir
        self._closed = False

        self.ingest = IngestPool(store.blobs, parent=self)
        self.sidebar = Sidebar(store)
        self.chat_view = ChatView()
        self.welcome = WelcomePanel()
        self.composer = Composer(self.ingest)
        self.composer.set_settings_source(self.effective_settings)  # its file size limits
        self.status = StatusBar(self)
        self.setStatusBar(self.status)
        self.controller = ChatController(
            store=store, view=self.chat_view, composer=self.composer,
            settings=self.effective_settings, model_problem=self._model_problem, parent=self,
        )  # fmt: skip
        self.image_viewer = ImageViewer()
        self.image_dock = QDockWidget("Image", self)
        self.video_panel = VideoPanel()
        self.video_dock = QDockWidget("Video", self)
        self.grounding = GroundingController(
            store=store, chat=self.controller, view=self.chat_view, composer=self.composer,
            viewer=self.image_viewer, dock=self.image_dock, parent=self,
        )  # fmt: skip
        self.documents = DocumentsController(
            store=store, chat=self.controller, view=self.chat_view, composer=self.composer,
            ingest=self.ingest, viewer=self.image_viewer, dock=self.image_dock,
            settings=self.effective_settings, parent=self,
        )  # fmt: skip
        self.video = VideoController(
            store=store, chat=self.controller, view=self.chat_view, panel=self.video_panel,
            dock=self.video_dock, settings=self.effective_settings, viewer=self.image_viewer,
            viewer_dock=self.image_dock, parent=self,
        )  # fmt: skip
        self._build_layout()
        self._build_actions()
        self._connect()
        QApplication.instance().installEventFilter(self)  # drops anywhere on the window
        # The engine thread starts once the window is on screen (see eventFilter), so its
        # imports do not compete with building and painting the window.
        self.controller.set_engine_factory(engine_factory)
        self._update_welcome()
        self.composer.set_text(load_draft(data_dir))  # what was typed before the last close
        self.composer.focus_input()

    # -- composition -------------------------------------------------------------------------

    def _build_layout(self) -> None:
        self.stack = QStackedWidget()
        self.stack.addWidget(self.chat_view)
        self.stack.addWidget(self.welcome)
        right = QWidget()
        right.setObjectName("ChatPane")
        right.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.stack, 1)
        column.addWidget(self.composer)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.sidebar)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 860])
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)
        # The image viewer: hidden until an image or an answer's boxes are shown.
        self.image_dock.setObjectName("imageDock")
        self.image_dock.setWidget(self.image_viewer)
        self.image_dock.setAllowedAreas(
            Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.image_dock)
        self.image_dock.hide()
        # The video panel: opened by a dropped clip, or from the Chat menu.
        self.video_dock.setObjectName("videoDock")
        self.video_dock.setWidget(self.video_panel)
        self.video_dock.setAllowedAreas(
            Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.video_dock)
        self.video_dock.hide()

    def _build_actions(self) -> None:
        def action(menu: object, text: str, keys: str, slot: object, name: str) -> QAction:
            act = QAction(text, self)
            act.setShortcut(QKeySequence(keys))
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.setObjectName(name)
            act.triggered.connect(slot)
            menu.addAction(act)  # type: ignore[attr-defined]
            return act

        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        action(file_menu, "&New chat", "Ctrl+N", self.controller.new_chat, "newChat")
        action(file_menu, "&Attach files…", "Ctrl+O", self.choose_attachments, "attach")
        file_menu.addSeparator()
        action(file_menu, "&Settings…", "Ctrl+,", self.open_settings, "settings")
        file_menu.addSeparator()
        action(file_menu, "&Quit", "Ctrl+Q", self.close, "quit")
        edit_menu = bar.addMenu("&Edit")
        action(edit_menu, "&Find in chats", "Ctrl+F", self.sidebar.focus_search, "find")
        action(
            edit_menu, "&Copy last answer", "Ctrl+Shift+C", self.controller.copy_last_answer, "copy"
        )
        chat_menu = bar.addMenu("&Chat")
        self.stop_action = action(chat_menu, "&Stop answer", "Esc", self.controller.stop, "stop")
        self.stop_action.setEnabled(False)
        locate = action(chat_menu, "&Locate in image…", "Ctrl+Shift+L", self._locate, "locate")
        locate.setToolTip("Ask Scout to draw boxes around something in the image")
        chat_menu.addAction(self.image_dock.toggleViewAction())
        video_toggle = self.video_dock.toggleViewAction()
        video_toggle.setText("&Video panel")
        chat_menu.addAction(video_toggle)
        model_menu = bar.addMenu("&Model")
        action(model_menu, "&Load model", "Ctrl+L", self.controller.load_model, "loadModel")
        action(model_menu, "&Cancel loading", "", self.controller.cancel_model_load, "cancelLoad")
        action(model_menu, "&Unload model", "", self.controller.unload_model, "unloadModel")
        help_menu = bar.addMenu("&Help")
        about = QAction("&About Scout Desk", self)
        about.triggered.connect(self._show_about)
        help_menu.addAction(about)

    def _connect(self) -> None:
        c, grounding, documents, video = self.controller, self.grounding, self.documents, self.video
        c.session_opened.connect(self._on_controller_session_opened)
        c.sessions_changed.connect(self.sidebar.refresh)
        c.generating_changed.connect(self.stop_action.setEnabled)
        c.message_posted.connect(self._post)
        c.engine_state_changed.connect(self.status.set_engine_state)
        c.load_progressed.connect(self.status.set_load_progress)
        c.engine_status_changed.connect(self._on_controller_engine_status_changed)
        c.timings_changed.connect(self.status.set_timings)
        c.prefill_progressed.connect(self.status.set_prefill_progress)
        # Features meet here: the chat's events reach them, their guards reach the chat.
        c.add_send_guard(video.busy_refusal)  # no plain answer while the clip is asked about
        c.add_send_guard(documents.meter.refusal)  # nor over the context budget
        c.answer_finished.connect(grounding.on_chat_answer_finished)
        c.answer_finished.connect(documents.on_chat_answer_finished)
        c.session_opened.connect(grounding.on_chat_session_opened)
        c.session_opened.connect(documents.on_chat_changed)
        c.session_opened.connect(video.on_chat_session_opened)
        c.sessions_changed.connect(documents.on_chat_changed)
        c.engine_status_changed.connect(documents.on_chat_engine_status_changed)
        c.generating_changed.connect(documents.on_chat_generating_changed)
        self.ingest.ingest_finished.connect(video.on_ingest_finished)
        self.composer.chips.attachment_activated.connect(video.on_attachment_activated)
        self.chat_view.attachment_activated.connect(video.on_attachment_activated)
        for feature in (grounding, documents, video):
            feature.message_posted.connect(self._post)
        self.sidebar.session_activated.connect(c.open_session)
        self.sidebar.search_hit_activated.connect(self._on_sidebar_search_hit_activated)
        self.sidebar.new_chat_requested.connect(c.new_chat)
        self.sidebar.session_trashed.connect(self._on_sidebar_session_trashed)
        self.sidebar.message_posted.connect(self._post)
        self.composer.attach_requested.connect(self.choose_attachments)
        self.composer.chips.attachment_activated.connect(self.show_attachment)
        self.welcome.choose_model_requested.connect(self.choose_model_dir)
        self.welcome.settings_requested.connect(self.open_settings)

    # -- settings and model ------------------------------------------------------------------

    def effective_settings(self) -> Settings:
        """The settings in force: a model folder from --model or the environment wins."""
        if self._model_override is not None:
            return replace(self._settings, model_dir=str(self._model_override), backend="local")
        return self._settings

    def _model_problem(self) -> str | None:
        settings = self.effective_settings()
        if not self._requires_model_dir:
            return None
        if settings.backend == "server":
            return None if settings.server_url else NO_SERVER_NOTICE
        return None if settings.model_dir else NO_MODEL_NOTICE

    def apply_settings(self, settings: Settings, api_key: str | None = None) -> bool:
        """Save new settings and apply them (theme live; another model restarts the engine).

        Args:
            settings: the new settings.
            api_key: a key typed for `settings.server_url`; it goes to the OS keyring (or, with
                no keyring, stays in memory for this run), never to settings.json.

        Returns:
            True when settings.json was written.
        """
        try:
            save_settings(self._data_dir / "settings.json", settings)
        except OSError as exc:
            self._post(f"Settings could not be saved: {exc.strerror or exc}")
            return False
        key_changed = api_key is not None and bool(settings.server_url)
        if key_changed:
            from app.core.api_keys import KeyringUnavailableError, save_api_key

            try:
                save_api_key(settings.server_url, api_key or "")
            except KeyringUnavailableError as exc:
                self._post(exc.message)
        old, self._settings = self._settings, settings
        apply_theme(QApplication.instance(), settings.theme)
        engine_fields = ("model_dir", "quantization", "backend", "server_url", "server_model")
        if key_changed or any(getattr(old, f) != getattr(settings, f) for f in engine_fields):
            self.composer.clear_notice()
            self.controller.restart_engine()
        self._update_welcome()
        self.documents.meter.schedule()  # another model or answer length changes the budget
        return True

    def open_settings(self) -> None:
        """Show the settings dialog (Ctrl+,)."""
        from app.core.api_keys import load_api_key

        saved_key = bool(self._settings.server_url and load_api_key(self._settings.server_url))
        dialog = SettingsDialog(
            self._settings, self._data_dir, self._model_override, self, saved_key=saved_key
        )
        app = QApplication.instance()
        dialog.theme_previewed.connect(lambda theme: apply_theme(app, theme))
        if dialog.exec():
            self.apply_settings(dialog.settings(), dialog.typed_key())
        dialog.deleteLater()

    def choose_model_dir(self) -> None:
        """Pick the model folder (the welcome panel's button)."""
        chosen = QFileDialog.getExistingDirectory(self, "Choose the Llama 4 Scout folder")
        if chosen:
            self.apply_settings(replace(self._settings, model_dir=chosen))

    def _update_welcome(self) -> None:
        show = self._model_problem() is not None and self.controller.session_id is None
        self.stack.setCurrentWidget(self.welcome if show else self.chat_view)

    # -- attachments -------------------------------------------------------------------------

    def choose_attachments(self) -> None:
        """Pick files to attach (Ctrl+O)."""
        files, _filter = QFileDialog.getOpenFileNames(self, "Attach files")
        if files:
            self.composer.attach_paths([Path(f) for f in files])

    def open_files(self, paths: list[Path]) -> None:
        """Attach files given on the command line to a new chat."""
        if paths:
            self.controller.new_chat()
            self.composer.attach_paths(paths)

    def show_attachment(self, attachment: Attachment | None) -> QDialog | None:
        """Preview a stored attachment (works without a model); returns the dialog shown."""
        if attachment is None or not attachment.sha256 or attachment.kind is AttachmentKind.VIDEO:
            return None  # a video opens in the video panel instead (see `self.video`)
        return preview_attachment(self, attachment, self._store.blobs.path(attachment.sha256))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.Expose and watched is self.windowHandle():
            if watched.isExposed() and not self._closed:
                QTimer.singleShot(0, self.controller.ensure_engine)
            return False
        # Files dropped on any widget of this window become attachments.
        if (
            event.type() in _DROP_EVENTS
            and isinstance(watched, QWidget)
            and watched.window() is self
            and isinstance(event, QDropEvent)  # DragEnter and DragMove derive from it
        ):
            paths = local_paths(event.mimeData())
            if paths:
                event.setDropAction(Qt.DropAction.CopyAction)
                event.accept()
                if event.type() == QEvent.Type.Drop:
                    self.composer.attach_paths(paths)
                return True
        return super().eventFilter(watched, event)

    # -- slots -------------------------------------------------------------------------------

    def _locate(self) -> None:
        self.grounding.locate()  # not connected directly: `triggered` would pass its bool

    def _post(self, text: str) -> None:
        self.status.showMessage(text, 8000)

    def _on_controller_engine_status_changed(self, status: EngineStatus | None) -> None:
        if status is not None:
            self.status.set_engine_status(status)

    def _on_controller_session_opened(self, session_id: str | None) -> None:
        self.sidebar.select_session(session_id)
        self._update_welcome()

    def _on_sidebar_search_hit_activated(self, session_id: str, message_id: str) -> None:
        if session_id != self.controller.session_id:
            self.controller.open_session(session_id)
        widget = self.chat_view.message_widget(message_id)
        if widget is not None:
            self.chat_view.ensureWidgetVisible(widget)

    def _on_sidebar_session_trashed(self, session_id: str, title: str) -> None:
        self.controller.forget_session(session_id)
        self.status.show_undo(
            f"Moved “{title}” to the trash.", lambda: self.sidebar.restore_session(session_id)
        )

    def _show_about(self) -> None:
        text = (
            f"Scout Desk {__version__}\nQuestion images, video and documents with Llama 4 Scout, "
            f"locally.\n\nData folder: {self._data_dir}"
        )
        # Not `QMessageBox.about`: it would take a data folder named like markup as HTML.
        plain_message_box(self, QMessageBox.Icon.Information, "About Scout Desk", text).exec()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        # Cancel and save a streaming answer, then join the worker and the ingest pool.
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop background work (idempotent): save a partial answer, join threads."""
        if self._closed:
            return
        self._closed = True
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        save_draft(self._data_dir, self.composer.text())  # unsent text survives the close
        self.video.shutdown()  # first: it cancels its question on the worker and saves it
        self.controller.shutdown()
        self.documents.shutdown()
        self.ingest.shutdown()
