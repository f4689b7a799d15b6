"""Attachment chips under the composer: one per file, each with a visible status and a remove ×."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QImage, QMouseEvent, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.messages import Attachment, AttachmentKind, AttachmentStatus

_MAX_NAME = 28


class AttachmentChip(QFrame):
    """A rounded label "name — status" with a × button; the full detail is its tooltip."""

    #: the chip's × was pressed.
    remove_requested = Signal()
    #: the chip was clicked (to preview a ready attachment).
    activated = Signal()

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AttachmentChip")
        self.name = name
        self.attachment: Attachment | None = None
        self.state = "reading"
        self._label = QLabel(self)
        self._remove = QToolButton(self)
        self._remove.setText("×")
        self._remove.setAccessibleName(f"Remove {name}")
        self._remove.setToolTip(f"Remove {name}")
        self._remove.setCursor(Qt.CursorShape.PointingHandCursor)
        self._remove.clicked.connect(self.remove_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 3, 4, 3)
        layout.setSpacing(4)
        layout.addWidget(self._label)
        layout.addWidget(self._remove)
        self.set_reading()

    @property
    def status_text(self) -> str:
        """What the chip says about its file: "ready", "reading…" or "error: reason"."""
        if self.state == "reading":
            return "reading…"
        detail = self.attachment.detail if self.attachment else ""
        if self.state == "error":
            return f"error: {detail or 'unusable file'}"
        if self.state == "skipped":
            return f"skipped: {detail}" if detail else "skipped"
        return "ready"

    def set_reading(self) -> None:
        """Show the file as being read."""
        self.state = "reading"
        self._refresh()

    def set_attachment(self, attachment: Attachment) -> None:
        """Show what ingest made of the file (ready, or an error with its reason)."""
        self.attachment = attachment
        self.name = attachment.name
        self.state = {
            AttachmentStatus.ERROR: "error",
            AttachmentStatus.SKIPPED: "skipped",
        }.get(attachment.status, "ready")
        self._refresh()

    def _refresh(self) -> None:
        shown = self.name if len(self.name) <= _MAX_NAME else self.name[: _MAX_NAME - 1] + "…"
        status = self.status_text
        if len(status) > 60:
            status = status[:59] + "…"
        self._label.setText(f"{shown} — {status}")
        self.setToolTip(f"{self.name}\n{self.status_text}")
        self.setAccessibleName(f"Attachment {self.name}: {self.status_text}")
        self.setProperty("state", self.state)
        # Re-polish so the style sheet's [state="error"] rule follows the property.
        self.style().unpolish(self)
        self.style().polish(self)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        if event.button() == Qt.MouseButton.LeftButton and self.state == "ready":
            self.activated.emit()
        super().mouseReleaseEvent(event)


class AttachmentChips(QScrollArea):
    """A horizontal strip of chips; hidden while empty.

    Chips are keyed by the ingest job that fills them. A folder is one job that may yield many
    attachments, so its "reading…" chip is replaced by one chip per file.
    """

    #: chips were added, changed or removed.
    changed = Signal()
    #: (Attachment) a ready chip was clicked.
    attachment_activated = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AttachmentStrip")
        self.setAccessibleName("Attachments")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        inner = QWidget(self)
        inner.setObjectName("AttachmentStripInner")
        self._row = QHBoxLayout(inner)
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.setSpacing(6)
        self._row.addStretch(1)
        self.setWidget(inner)
        self.viewport().setAutoFillBackground(False)
        self._pending: dict[int, AttachmentChip] = {}
        self.setVisible(False)

    def add_pending(self, job_id: int, name: str) -> None:
        """Show a "reading…" chip for a job that has just been queued."""
        chip = self._add_chip(name)
        self._pending[job_id] = chip
        self._changed()

    def resolve(self, job_id: int, attachments: Sequence[Attachment]) -> None:
        """Replace a job's "reading…" chip by what ingest returned (ignored if it was removed)."""
        chip = self._pending.pop(job_id, None)
        if chip is None:
            return
        if not attachments:
            attachments = [
                Attachment(
                    name=chip.name,
                    kind=AttachmentKind.DOCUMENT,
                    status=AttachmentStatus.ERROR,
                    detail=f"{chip.name} holds nothing that can be attached.",
                )
            ]
        chip.set_attachment(attachments[0])
        index = self._row.indexOf(chip)
        for offset, attachment in enumerate(attachments[1:], start=1):
            extra = self._add_chip(attachment.name, index + offset)
            extra.set_attachment(attachment)
        self._changed()

    def add_ready(self, attachments: Iterable[Attachment]) -> None:
        """Show attachments that are already stored (edit & resend), as ready again."""
        for attachment in attachments:
            if attachment.status == AttachmentStatus.ERROR or not attachment.sha256:
                continue
            chip = self._add_chip(attachment.name)
            chip.set_attachment(replace(attachment, status=AttachmentStatus.READY, detail=""))
        self._changed()

    def chips(self) -> list[AttachmentChip]:
        """Every chip, left to right."""
        found = (self._row.itemAt(i).widget() for i in range(self._row.count()))
        return [w for w in found if isinstance(w, AttachmentChip)]

    def ready_attachments(self) -> list[Attachment]:
        """The attachments a send would carry (chips in error are left out)."""
        return [c.attachment for c in self.chips() if c.state == "ready" and c.attachment]

    def is_reading(self) -> bool:
        """True while any chip still waits for its file to be read."""
        return bool(self._pending)

    def clear(self) -> None:
        """Remove every chip (after a send, or when switching chats)."""
        for chip in self.chips():
            self._remove_chip(chip, notify=False)
        self._changed()

    def _add_chip(self, name: str, index: int | None = None) -> AttachmentChip:
        chip = AttachmentChip(name, self.widget())
        chip.remove_requested.connect(lambda: self._remove_chip(chip))
        chip.activated.connect(lambda: self.attachment_activated.emit(chip.attachment))
        position = self._row.count() - 1 if index is None else index  # before the stretch
        self._row.insertWidget(position, chip)
        return chip

    def _remove_chip(self, chip: AttachmentChip, notify: bool = True) -> None:
        for job_id, pending in list(self._pending.items()):
            if pending is chip:
                del self._pending[job_id]
        self._row.removeWidget(chip)
        chip.hide()
        chip.deleteLater()
        if notify:
            self._changed()

    def _changed(self) -> None:
        has_chips = bool(self.chips())
        self.setVisible(has_chips)
        if has_chips:
            hint = self.widget().sizeHint().height()
            bar = self.horizontalScrollBar().sizeHint().height()
            self.setFixedHeight(hint + bar)
        self.changed.emit()


_PREVIEW_TEXT_CHARS = 200_000


def preview_attachment(parent: QWidget, attachment: Attachment, blob_path: Path) -> QDialog:
    """Open a window showing a stored attachment (images scaled to fit, text read-only).

    Works without a model. The dialog deletes itself when closed.

    Args:
        parent: the window it belongs to.
        attachment: what to show.
        blob_path: the stored blob's file.

    Returns:
        The dialog, already shown.
    """
    dialog = QDialog(parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    dialog.setWindowTitle(attachment.name)
    layout = QVBoxLayout(dialog)
    body: QWidget
    image = QImage(str(blob_path)) if attachment.kind is AttachmentKind.IMAGE else QImage()
    if not image.isNull():
        label = QLabel()
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        pixmap = QPixmap.fromImage(image)
        label.setPixmap(
            pixmap.scaled(
                QSize(1000, 760).boundedTo(pixmap.size()),
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )
        label.setAccessibleName(f"Image {attachment.name}")
        body = label
    elif attachment.kind in (AttachmentKind.TEXT, AttachmentKind.DOCUMENT) and blob_path.is_file():
        editor = QPlainTextEdit()
        editor.setReadOnly(True)
        with blob_path.open("rb") as handle:
            raw = handle.read(_PREVIEW_TEXT_CHARS * 4)
        editor.setPlainText(raw.decode("utf-8", errors="replace")[:_PREVIEW_TEXT_CHARS])
        editor.setAccessibleName(f"Text of {attachment.name}")
        dialog.resize(760, 560)
        body = editor
    else:
        reason = attachment.detail or "no preview"
        body = QLabel(f"{attachment.name} cannot be shown here ({reason}).")
    layout.addWidget(body)
    caption = f"{attachment.name} — {attachment.status}: {attachment.detail}".rstrip(": ")
    layout.addWidget(QLabel(caption))
    dialog.show()
    return dialog
