"""A read-only text view for untrusted model output: loads nothing, follows links only on a yes."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from PySide6.QtCore import QRectF, QSize, QSizeF, Qt, QUrl, Signal
from PySide6.QtGui import (
    QDesktopServices,
    QPainter,
    QPyTextObject,
    QTextCursor,
    QTextDocument,
    QTextFormat,
)
from PySide6.QtWidgets import QFrame, QMessageBox, QSizePolicy, QTextBrowser, QWidget

log = logging.getLogger(__name__)

#: The only link schemes handed to the system browser.
OPENABLE_SCHEMES = frozenset({"http", "https"})
#: Citation links ("[report.pdf p. 12]"), opened inside the app and never by the system.
CITATION_SCHEME = "scout-cite"


def link_text(url: QUrl) -> str:
    """Spell a link the way the confirmation shows it: encoded, so look-alike text cannot hide it.

    Args:
        url: the link.

    Returns:
        The URL with percent-encoding kept and an international host in punycode.
    """
    return bytes(url.toEncoded().data()).decode("ascii", errors="replace")


def ask_to_open_link(parent: QWidget | None, url: QUrl) -> bool:
    """Ask the user whether to open a link in the browser (the default confirmation).

    Args:
        parent: the dialog's parent.
        url: the link; shown as plain text, never as rich text.

    Returns:
        True when the user chose Yes.
    """
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Open link")
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setText(f"Open this link in your browser?\n\n{link_text(url)}")
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


class _InertDocument(QTextDocument):
    """A document that fetches nothing.

    QTextDocument's own `loadResource` reads a local file itself when the view answers nothing
    (and decodes data: URLs), so overriding the view's method alone is not enough.
    """

    def loadResource(self, kind: int, name: QUrl) -> object:  # noqa: N802 (Qt's name)
        log.debug("document refused to load resource %s", name.toString())
        return None


class _NoImages(QPyTextObject):
    """Replaces Qt's image handler, which opens `<img src>` paths with QImage::load itself."""

    def intrinsicSize(self, doc: QTextDocument, pos: int, fmt: QTextFormat) -> QSizeF:  # noqa: N802
        return QSizeF(0, 0)

    def drawObject(  # noqa: N802 (Qt's name)
        self, painter: QPainter, rect: QRectF, doc: QTextDocument, pos: int, fmt: QTextFormat
    ) -> None:
        return


class SafeMarkdownView(QTextBrowser):
    """Shows markdown (rendered by `app.core.render`) or streamed plain text, as tall as its text.

    It never loads a resource: the view and its document answer nothing for every URL, and images
    are laid out as nothing, so an `<img src>` naming a local file or a web address reads nothing
    (`render_markdown` emits no images in the first place; this is the second wall). A clicked
    link is offered to the browser only if it is http(s) and the user says yes to `confirm_link`;
    a citation link (`scout-cite:`, put there by `citation_links`) is only reported.

    Attributes:
        confirm_link: asks the user about a link; tests replace it to answer without a dialog.
        code_style: the Pygments style for code blocks (a dark theme picks a dark one).
    """

    #: QUrl: the user clicked a link (before any confirmation).
    link_activated = Signal(QUrl)
    #: QUrl: a link was handed to the system browser.
    link_opened = Signal(QUrl)
    #: QUrl: a citation link (scout-cite:) was clicked; the app opens the source itself.
    citation_activated = Signal(QUrl)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDocument(_InertDocument(self))
        self._no_images = _NoImages(self)
        self.document().documentLayout().registerHandler(
            QTextFormat.ObjectTypes.ImageObject, self._no_images
        )
        self.confirm_link: Callable[[QUrl], bool] = lambda url: ask_to_open_link(self, url)
        self.code_style = "default"
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setSearchPaths([])
        self.setReadOnly(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAccessibleName("Message text")
        # The view grows with its text instead of scrolling inside the chat's own scroll area.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.viewport().setAutoFillBackground(False)
        document = self.document()
        # Streaming appends thousands of small edits; an undo history would keep every one.
        document.setUndoRedoEnabled(False)
        document.documentLayout().documentSizeChanged.connect(self._on_layout_size_changed)
        self.anchorClicked.connect(self._on_self_anchor_clicked)
        self._update_height()

    def loadResource(self, kind: int, name: QUrl) -> object:  # noqa: N802 (Qt's name)
        """Load nothing, whatever the URL: model output must not read files or reach the net."""
        log.debug("refused to load resource %s", name.toString())
        return None

    def set_markdown(self, text: str) -> None:
        """Replace the content with `text` rendered as safe markdown.

        Args:
            text: untrusted markdown.
        """
        # Whitespace after the last block would show as a stray space on a line of its own.
        # markdown-it + pygments take ~0.2 s to import: pay that at the first answer, not at start.
        from app.core.render import render_markdown

        self.setHtml(render_markdown(text, code_style=self.code_style).strip())

    def set_plain(self, text: str) -> None:
        """Replace the content with plain text (the start of a streamed answer).

        Args:
            text: shown as is.
        """
        self.setPlainText(text)

    def append_plain(self, text: str) -> None:
        """Add plain text at the very end, touching nothing before it (cost grows with `text` only).

        Args:
            text: shown as is; newlines start new paragraphs.
        """
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)

    def open_link(self, url: QUrl) -> bool:
        """Open `url` in the system browser if it is http(s) and the user confirms.

        Args:
            url: the clicked link.

        Returns:
            True when the link was handed to the browser.
        """
        if url.scheme().lower() not in OPENABLE_SCHEMES or not url.isValid():
            log.info("refused to open a %r link", url.scheme())
            return False
        if not self.confirm_link(url):
            return False
        opened = QDesktopServices.openUrl(url)
        if opened:
            self.link_opened.emit(url)
        return bool(opened)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        hint = super().sizeHint()
        return QSize(hint.width(), self._content_height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return QSize(super().minimumSizeHint().width(), self._content_height())

    def _content_height(self) -> int:
        document: QTextDocument = self.document()
        height = math.ceil(document.size().height())
        margins = self.contentsMargins()
        height += margins.top() + margins.bottom()
        # A long code line cannot wrap; leave room for the horizontal scroll bar it brings.
        if document.idealWidth() > self.viewport().width() + 1:
            height += self.horizontalScrollBar().sizeHint().height()
        return height

    def _update_height(self) -> None:
        height = self._content_height()
        if height != self.height() or self.minimumHeight() != height:
            self.setFixedHeight(height)

    def _on_layout_size_changed(self, _size: object) -> None:
        self._update_height()

    def _on_self_anchor_clicked(self, url: QUrl) -> None:
        self.link_activated.emit(url)
        if url.scheme().lower() == CITATION_SCHEME:
            self.citation_activated.emit(url)  # handled in the app; never the system's business
            return
        self.open_link(url)
