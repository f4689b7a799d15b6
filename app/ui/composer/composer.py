"""The composer: message box, attachment chips, Attach / Send / Stop and inline notices."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.messages import Attachment, AttachmentKind, AttachmentStatus
from app.core.settings import IngestLimits, Settings
from app.ui.composer.chips import ComposerChips
from app.ui.composer.pdf_password import PasswordPrompt, ask_pdf_password
from app.ui.tasks.ingest_pool import IngestPool

if TYPE_CHECKING:
    from app.core.ingest.common import BlobFolder

_MIN_LINES = 2
_MAX_LINES = 10


def local_paths(mime: QMimeData) -> list[Path]:
    """The local files and folders a drag or a clipboard carries (remote URLs are ignored).

    Args:
        mime: the drop's or the clipboard's data.

    Returns:
        The paths, in the order given.
    """
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class MessageEdit(QPlainTextEdit):
    """Enter sends, Shift+Enter breaks the line; pasted files and images become attachments."""

    #: Enter was pressed (without Shift).
    submitted = Signal()
    #: (list[Path]) files or folders were pasted.
    paths_pasted = Signal(object)
    #: (QImage) an image was pasted from the clipboard.
    image_pasted = Signal(QImage)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                # Insert a real newline: the default would insert U+2028, a line separator.
                self.textCursor().insertText("\n")
            else:
                self.submitted.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def canInsertFromMimeData(self, source: QMimeData) -> bool:  # noqa: N802 (Qt API)
        if local_paths(source) or source.hasImage():
            return True
        return super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:  # noqa: N802 (Qt API)
        paths = local_paths(source)
        if paths:
            self.paths_pasted.emit(paths)
        elif source.hasImage():
            image = source.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.image_pasted.emit(image)
        else:
            super().insertFromMimeData(source)


class Composer(QWidget):
    """Where the user writes: notice, chips, message box and buttons.

    Args:
        ingest: the pool that reads attached files off the GUI thread.
    """

    #: the user asked to send what is in the box (Enter or the Send button).
    send_requested = Signal()
    #: the user asked to stop the answer being written.
    stop_requested = Signal()
    #: the user asked for the file dialog (Attach button).
    attach_requested = Signal()
    #: the user dismissed the "editing an earlier message" banner.
    edit_cancelled = Signal()
    #: the user asked to locate something in an image (Locate button).
    locate_requested = Signal()
    #: the typed text or the attachments changed (the context meter counts again).
    draft_changed = Signal()

    def __init__(self, ingest: IngestPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Composer")
        self._ingest = ingest
        ingest.ingest_finished.connect(self._on_ingest_finished)
        self._editing = False
        # Ingest jobs of dropped paths, so an encrypted PDF can be read again with its password.
        self._jobs: dict[int, tuple[Path, str | None]] = {}
        #: frame-sampling jobs of dropped clips, by job id: the clip's attachment.
        self._frame_jobs: dict[int, Attachment] = {}
        #: Asks for a PDF's password; tests replace it to answer without a dialog.
        self.ask_password: PasswordPrompt = ask_pdf_password
        #: The settings whose limits apply to attached files (`set_settings_source`); None
        #: means the defaults.
        self._settings_source: Callable[[], Settings] | None = None

        self.notice = QLabel(self)
        self.notice.setObjectName("ComposerNotice")
        self.notice.setTextFormat(Qt.TextFormat.PlainText)  # notices quote file names
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.setAccessibleName("Notice")
        self._notice_close = QToolButton(self)
        self._notice_close.setText("×")
        self._notice_close.setAccessibleName("Dismiss notice")
        self._notice_close.clicked.connect(self._on_notice_closed)
        notice_row = QHBoxLayout()
        notice_row.addWidget(self.notice, 1)
        notice_row.addWidget(self._notice_close, 0, Qt.AlignmentFlag.AlignTop)

        self.chips = ComposerChips(self)
        self.editor = MessageEdit(self)
        self.editor.setObjectName("ComposerInput")
        self.editor.setPlaceholderText(
            "Ask about your images and documents…   (Enter sends, Shift+Enter: new line)"
        )
        self.editor.setAccessibleName("Message")
        self.editor.setTabChangesFocus(True)
        self.editor.submitted.connect(self.send_requested)
        self.editor.paths_pasted.connect(self.attach_paths)
        self.editor.image_pasted.connect(self.attach_image)
        self.editor.document().contentsChanged.connect(self._fit_height)
        self.editor.textChanged.connect(self.draft_changed)
        self.chips.changed.connect(self.draft_changed)

        self.attach_button = QPushButton("Attach…", self)
        self.attach_button.setObjectName("AttachButton")
        self.attach_button.setAccessibleName("Attach files")
        self.attach_button.setToolTip("Attach images, documents or folders (Ctrl+O)")
        self.attach_button.clicked.connect(self.attach_requested)
        self.locate_button = QPushButton("Locate…", self)
        self.locate_button.setObjectName("LocateButton")
        self.locate_button.setAccessibleName("Locate in image")
        self.locate_button.setToolTip(
            "Ask Scout to draw boxes around something in the image (or type /locate …)"
        )
        self.locate_button.clicked.connect(self._on_locate_clicked)
        # The app style sheet (theme.py) styles the Attach button; this one matches it.
        self.locate_button.setStyleSheet(
            "QPushButton { border: 1px solid palette(mid); border-radius: 6px; padding: 5px 12px; }"
        )
        self.send_button = QPushButton("Send", self)
        self.send_button.setObjectName("PrimaryButton")
        self.send_button.setAccessibleName("Send message")
        self.send_button.setToolTip("Send (Enter)")
        self.send_button.clicked.connect(self.send_requested)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName("StopButton")
        self.stop_button.setAccessibleName("Stop answer")
        self.stop_button.setToolTip("Stop the answer (Esc)")
        self.stop_button.clicked.connect(self.stop_requested)
        self.stop_button.hide()

        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.attach_button)
        buttons.addWidget(self.locate_button)
        buttons.addStretch(1)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.send_button)

        frame = QFrame(self)
        frame.setObjectName("ComposerFrame")
        inside = QVBoxLayout(frame)
        inside.setContentsMargins(10, 8, 10, 8)
        inside.setSpacing(6)
        inside.addWidget(self.chips)
        inside.addWidget(self.editor)
        inside.addLayout(buttons)
        self._inside = inside

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 6, 16, 12)
        layout.setSpacing(6)
        layout.addLayout(notice_row)
        layout.addWidget(frame)
        self.clear_notice()
        self._fit_height()

    # -- text --------------------------------------------------------------------------------

    def text(self) -> str:
        """What the user has typed."""
        return self.editor.toPlainText()

    def set_text(self, text: str) -> None:
        """Replace the typed text and put the cursor at its end."""
        self.editor.setPlainText(text)
        self.editor.moveCursor(self.editor.textCursor().MoveOperation.End)

    def clear(self) -> None:
        """Empty the box and the chips (after a send)."""
        self.editor.clear()
        self.chips.clear()
        self.set_editing(False)

    def focus_input(self) -> None:
        """Put the keyboard focus in the message box."""
        self.editor.setFocus(Qt.FocusReason.OtherFocusReason)

    # -- state -------------------------------------------------------------------------------

    def add_row(self, widget: QWidget) -> None:
        """Show a feature's row under the text box, above the buttons (the context meter).

        Args:
            widget: the row; the composer becomes its parent.
        """
        self._inside.insertWidget(self._inside.count() - 1, widget)

    def set_generating(self, generating: bool) -> None:
        """Swap Send for Stop while an answer is being written."""
        self.stop_button.setVisible(generating)
        self.send_button.setVisible(not generating)

    def set_editing(self, editing: bool) -> None:
        """Show or hide the banner that says a send will replace an earlier message."""
        self._editing = editing
        if editing:
            self.show_notice(
                "Editing an earlier message: sending replaces it and everything after it.",
                kind="edit",
            )
        elif self.notice.property("kind") == "edit":
            self.clear_notice()

    @property
    def editing(self) -> bool:
        """True while the box holds an earlier message being edited."""
        return self._editing

    def show_notice(self, text: str, kind: str = "info") -> None:
        """Show a sentence above the box ("info", "error" or "edit" styling)."""
        self.notice.setText(text)
        self.notice.setProperty("kind", kind)
        self.notice.style().unpolish(self.notice)
        self.notice.style().polish(self.notice)
        self.notice.show()
        self._notice_close.show()

    def clear_notice(self) -> None:
        """Hide the notice."""
        self.notice.clear()
        self.notice.setProperty("kind", "")
        self.notice.hide()
        self._notice_close.hide()

    # -- attachments -------------------------------------------------------------------------

    def set_settings_source(self, source: Callable[[], Settings] | None) -> None:
        """Where the text file and folder limits of attached files come from."""
        self._settings_source = source

    def ingest_limits(self) -> IngestLimits:
        """The limits set in Settings now (read at each attach, so a change applies at once)."""
        source = self._settings_source
        return source().ingest_limits() if source is not None else IngestLimits()

    def attach_paths(self, paths: list[Path]) -> None:
        """Queue files and folders for reading; each gets a chip at once."""
        limits = self.ingest_limits()
        for path in paths:
            job_id = self._ingest.submit_path(path, limits=limits)
            self._jobs[job_id] = (path, None)
            self.chips.add_pending(job_id, path.name or str(path))

    def attach_image(self, image: QImage) -> None:
        """Queue a pasted image (saved as PNG, then read like a file)."""
        job_id = self._ingest.submit_image(image)
        self.chips.add_pending(job_id, "pasted image")

    def _on_ingest_finished(self, job_id: int, attachments: object) -> None:
        found = list(attachments)  # type: ignore[call-overload]
        if job_id in self._frame_jobs:
            self._show_clip_frames(self._frame_jobs.pop(job_id), found)
            return
        job = self._jobs.pop(job_id, None)
        if job is not None and len(found) == 1 and self.chips.is_pending(job_id):
            # Imported here: ingest has been loaded on the pool by now, start-up needs none of it.
            from app.core.ingest.pdf import needs_password

            if needs_password(found[0]):
                path, given = job
                password = self.ask_password(self.window(), found[0].name, given is not None)
                if password and self.chips.is_pending(job_id):
                    retry = self._ingest.submit_path(path, password, self.ingest_limits())
                    self._jobs[retry] = (path, password)
                    self.chips.rekey(job_id, retry)
                    return
        self.chips.resolve(job_id, found)
        for attachment in found:
            if (
                attachment.kind is AttachmentKind.VIDEO
                and attachment.status is AttachmentStatus.READY
            ):
                self._sample_clip(attachment)

    def _sample_clip(self, video: Attachment) -> None:
        """Put five frames of a dropped clip after its chip: in a chat Scout sees a video so.

        The user sees (and can remove) exactly the frames that will be sent, and their times.
        """

        def work(blobs: BlobFolder) -> list[Attachment]:
            from app.core.video.attachments import clip_frames

            return clip_frames(video, blobs.path, blobs)

        self._frame_jobs[self._ingest.submit_call(video.name, work)] = video

    def _show_clip_frames(self, video: Attachment, frames: list[Attachment]) -> None:
        chip = next((c for c in self.chips.chips() if c.attachment == video), None)
        if chip is None:  # removed while its frames were being sampled
            return
        usable = [f for f in frames if f.status is not AttachmentStatus.ERROR]
        if len(usable) != len(frames):
            chip.set_attachment(frames[-1])  # the error names the clip and says why
        self.chips.set_page_images(chip, usable)

    def _on_locate_clicked(self) -> None:
        self.locate_requested.emit()

    def _on_notice_closed(self) -> None:
        if self._editing:
            self._editing = False
            self.edit_cancelled.emit()
        self.clear_notice()

    def _fit_height(self) -> None:
        # Grow with the text between a few lines and a comfortable maximum, then scroll.
        line = self.editor.fontMetrics().lineSpacing()
        lines = max(_MIN_LINES, min(_MAX_LINES, self.editor.document().lineCount()))
        margins = self.editor.contentsMargins()
        extra = int(self.editor.document().documentMargin() * 2) + margins.top() + margins.bottom()
        self.editor.setFixedHeight(lines * line + extra + 4)
