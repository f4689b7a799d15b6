"""Attachment chips under the composer: one per file, each with a visible status and a remove ×."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QImage, QImageReader, QMouseEvent, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.messages import Attachment, AttachmentKind, AttachmentStatus
from app.ui.widgets.plain_text import plain_html, plain_label, plain_title

_MAX_NAME = 28
PDF_MIME = "application/pdf"
FOLDER_MIME = "inode/directory"
#: How a PDF goes into the prompt: its text, pictures of some pages, or both.
PDF_MODES = {"text": "Text only", "images": "Page images only", "both": "Text and page images"}
_FOLDER_SUMMARY = re.compile(r"^([\d,]+) files? used, ([\d,]+) skipped")


def document_summary(attachment: Attachment) -> str:
    """What a document chip says it read ("312 pages", "312 files, 41 skipped", "1,200 words").

    Args:
        attachment: a DOCUMENT attachment (its `detail` is ingest's summary).

    Returns:
        The first clause of the summary, shortened for a chip.
    """
    first = attachment.detail.split(";")[0].strip()
    match = _FOLDER_SUMMARY.match(first)
    if match:
        used = int(match[1].replace(",", ""))
        return f"{match[1]} file{'' if used == 1 else 's'}, {match[2]} skipped"
    return first.split(" (")[0] or "ready"


class ComposerChip(QFrame):
    """A rounded label "name — status" with a × button; the full detail is its tooltip."""

    #: the chip's × was pressed.
    remove_requested = Signal()
    #: the chip was clicked (to preview a ready attachment).
    activated = Signal()
    #: the chip's options (⋯) were asked for, at a global position.
    menu_requested = Signal(QPoint)

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ComposerChip")
        self.name = name
        self.attachment: Attachment | None = None
        self.state = "reading"
        #: For a PDF: "text", "images" or "both" (see `PDF_MODES`).
        self.pdf_mode = "text"
        #: The attachment as ingest made it, before files or pages were dropped from it.
        self.original: Attachment | None = None
        #: For a page image: the chip of the PDF it was rendered from.
        self.source_chip: ComposerChip | None = None
        self._label = plain_label(parent=self)  # a file name is never markup
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_self_context_menu_requested)
        self._remove = QToolButton(self)
        self._remove.setText("×")
        self._remove.setAccessibleName(f"Remove {name}")
        self._remove.setToolTip(plain_html(f"Remove {name}"))
        self._remove.setCursor(Qt.CursorShape.PointingHandCursor)
        self._remove.clicked.connect(self.remove_requested)
        self._options = QToolButton(self)
        self._options.setText("⋯")
        self._options.setObjectName("ChipOptions")
        self._options.setAccessibleName(f"Options for {name}")
        self._options.setToolTip("What was read, and how it is sent")
        self._options.setCursor(Qt.CursorShape.PointingHandCursor)
        self._options.clicked.connect(self._on_options_clicked)
        self._options.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 3, 4, 3)
        layout.setSpacing(4)
        layout.addWidget(self._label)
        layout.addWidget(self._options)
        layout.addWidget(self._remove)
        self.set_reading()

    @property
    def is_document(self) -> bool:
        """A ready PDF, Word file or folder (it has a report and options)."""
        attachment = self.attachment
        return (
            self.state == "ready"
            and attachment is not None
            and attachment.kind is AttachmentKind.DOCUMENT
        )

    @property
    def is_pdf(self) -> bool:
        """A ready PDF (it can also be sent as page images)."""
        return self.is_document and self.attachment is not None and self.attachment.mime == PDF_MIME

    @property
    def sends_text(self) -> bool:
        """Whether a send carries this chip's attachment (a PDF in "images" mode does not)."""
        return self.state == "ready" and not (self.is_pdf and self.pdf_mode == "images")

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
        if self.is_document and self.attachment is not None:
            summary = document_summary(self.attachment)
            if self.is_pdf and self.pdf_mode != "text":
                summary += " · page images" if self.pdf_mode == "images" else " · text + images"
            return summary
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

    def refresh(self) -> None:
        """Show the chip's state again (after its PDF mode changed)."""
        self._refresh()

    def _refresh(self) -> None:
        name = self.name
        if self.attachment is not None and self.attachment.mime == FOLDER_MIME:
            name += "/"
        shown = name if len(name) <= _MAX_NAME else name[: _MAX_NAME - 1] + "…"
        status = self.status_text
        if len(status) > 60:
            status = status[:59] + "…"
        self._label.setText(f"{shown} — {status}")
        tip = self.attachment.detail if self.attachment and self.is_document else self.status_text
        hint = "\nClick for the report of what was read." if self.is_document else ""
        self.setToolTip(plain_html(f"{name}\n{tip}{hint}"))
        self._options.setVisible(self.is_document)
        self.setAccessibleName(f"Attachment {self.name}: {self.status_text}")
        self.setProperty("state", self.state)
        # Re-polish so the style sheet's [state="error"] rule follows the property.
        self.style().unpolish(self)
        self.style().polish(self)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        if event.button() == Qt.MouseButton.LeftButton and self.state == "ready":
            self.activated.emit()
        super().mouseReleaseEvent(event)

    def _on_options_clicked(self) -> None:
        self.menu_requested.emit(self._options.mapToGlobal(QPoint(0, self._options.height())))

    def _on_self_context_menu_requested(self, pos: QPoint) -> None:
        if self.is_document:
            self.menu_requested.emit(self.mapToGlobal(pos))


class ComposerChips(QScrollArea):
    """A horizontal strip of chips; hidden while empty.

    Chips are keyed by the ingest job that fills them. A folder is one job that may yield many
    attachments, so its "reading…" chip is replaced by one chip per file.
    """

    #: chips were added, changed or removed.
    changed = Signal()
    #: (Attachment) a ready chip was clicked (documents ask for their report instead).
    attachment_activated = Signal(object)
    #: (ComposerChip) the report of a document chip was asked for (a click on it).
    report_requested = Signal(object)
    #: (ComposerChip, str) a PDF chip's mode was chosen ("text", "images", "both").
    pdf_mode_requested = Signal(object, str)
    #: (ComposerChip) the user wants to choose which pages of a PDF go as images.
    pages_requested = Signal(object)

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
        self._pending: dict[int, ComposerChip] = {}
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
            # A document keeps its summary ("312 pages"); other details said what became of it.
            keep = attachment.kind is AttachmentKind.DOCUMENT
            detail = attachment.detail if keep else ""
            chip.set_attachment(replace(attachment, status=AttachmentStatus.READY, detail=detail))
        self._changed()

    def chips(self) -> list[ComposerChip]:
        """Every chip, left to right."""
        found = (self._row.itemAt(i).widget() for i in range(self._row.count()))
        return [w for w in found if isinstance(w, ComposerChip)]

    def ready_attachments(self) -> list[Attachment]:
        """The attachments a send would carry (chips in error and PDFs sent as images only are
        left out)."""
        return [c.attachment for c in self.chips() if c.sends_text and c.attachment]

    def document_chips(self) -> list[ComposerChip]:
        """The ready PDF, Word and folder chips, left to right."""
        return [c for c in self.chips() if c.is_document]

    def is_pending(self, job_id: int) -> bool:
        """Whether a job's chip still waits for it (False once removed by the user)."""
        return job_id in self._pending

    def rekey(self, old_job: int, new_job: int) -> None:
        """Let a pending chip wait for another job (a PDF read again with its password)."""
        chip = self._pending.pop(old_job, None)
        if chip is not None:
            self._pending[new_job] = chip

    def replace_attachment(self, chip: ComposerChip, attachment: Attachment) -> None:
        """Show a changed attachment on a chip (files or pages dropped from a document)."""
        if chip in self.chips():
            chip.set_attachment(attachment)
            self._changed()

    def set_page_images(self, source: ComposerChip, attachments: Sequence[Attachment]) -> None:
        """Put a PDF's page images right after its chip, replacing the ones it had."""
        for chip in self.page_chips(source):
            self._remove_chip(chip, notify=False)
        index = self._row.indexOf(source)
        if index < 0:
            return
        for offset, attachment in enumerate(attachments, start=1):
            chip = self._add_chip(attachment.name, index + offset)
            chip.set_attachment(attachment)
            chip.source_chip = source
        self._changed()

    def page_chips(self, source: ComposerChip) -> list[ComposerChip]:
        """The page-image chips rendered from a PDF chip."""
        return [c for c in self.chips() if c.source_chip is source]

    def options_menu(self, chip: ComposerChip) -> QMenu:
        """The ⋯ menu of a document chip: its report, and for a PDF how it is sent.

        Args:
            chip: a document chip.

        Returns:
            A menu, not shown yet.
        """
        menu = QMenu(self)
        report = menu.addAction("What was read (choose files or pages)…")
        report.triggered.connect(lambda: self.report_requested.emit(chip))
        if chip.is_pdf:
            menu.addSection("Send this PDF as")
            for mode, text in PDF_MODES.items():
                action = menu.addAction(text)
                action.setCheckable(True)
                action.setChecked(chip.pdf_mode == mode)
                action.triggered.connect(
                    lambda _checked=False, m=mode: self.pdf_mode_requested.emit(chip, m)
                )
            pages = menu.addAction("Choose page images…")
            pages.setEnabled(chip.pdf_mode != "text")
            pages.triggered.connect(lambda: self.pages_requested.emit(chip))
        return menu

    def is_reading(self) -> bool:
        """True while any chip still waits for its file to be read."""
        return bool(self._pending)

    def clear(self) -> None:
        """Remove every chip (after a send, or when switching chats)."""
        for chip in self.chips():
            self._remove_chip(chip, notify=False)
        self._changed()

    def _add_chip(self, name: str, index: int | None = None) -> ComposerChip:
        chip = ComposerChip(name, self.widget())
        chip.remove_requested.connect(lambda: self._remove_chip(chip))
        chip.activated.connect(lambda: self._on_chip_activated(chip))
        chip.menu_requested.connect(lambda pos: self._on_chip_menu_requested(chip, pos))
        position = self._row.count() - 1 if index is None else index  # before the stretch
        self._row.insertWidget(position, chip)
        return chip

    def _on_chip_activated(self, chip: ComposerChip) -> None:
        if chip.is_document:
            self.report_requested.emit(chip)
        else:
            self.attachment_activated.emit(chip.attachment)

    def _on_chip_menu_requested(self, chip: ComposerChip, pos: QPoint) -> None:
        menu = self.options_menu(chip)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        menu.popup(pos)

    def _remove_chip(self, chip: ComposerChip, notify: bool = True) -> None:
        if self._row.indexOf(chip) < 0:
            return  # already gone with the PDF it was rendered from
        for page in self.page_chips(chip):  # a PDF's page images go with it
            self._remove_chip(page, notify=False)
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
    dialog.setWindowTitle(plain_title(attachment.name))
    layout = QVBoxLayout(dialog)
    body: QWidget
    image = _preview_image(blob_path) if attachment.kind is AttachmentKind.IMAGE else QImage()
    if not image.isNull():
        label = QLabel()
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setPixmap(QPixmap.fromImage(image))
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
        body = _plain_label(f"{attachment.name} cannot be shown here ({reason}).")
    layout.addWidget(body)
    caption = f"{attachment.name} — {attachment.status}: {attachment.detail}".rstrip(": ")
    layout.addWidget(_plain_label(caption))
    dialog.show()
    return dialog


def _plain_label(text: str) -> QLabel:
    """A wrapping label showing `text` as it is: file names and ingest errors are never markup."""
    label = plain_label(text)
    label.setWordWrap(True)
    return label


def _preview_image(path: Path) -> QImage:
    """The image decoded straight at preview size: a 40-megapixel photo is never decoded whole."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(False)  # stored blobs are already upright
    size = reader.size()
    if size.isValid():
        reader.setScaledSize(
            size.boundedTo(size.scaled(QSize(1000, 760), Qt.AspectRatioMode.KeepAspectRatio))
        )
    return reader.read()
