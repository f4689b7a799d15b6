"""A read-only text view for untrusted model output: loads nothing, follows links only on a yes."""

from __future__ import annotations

import enum
import logging
import math
import weakref
from collections.abc import Callable

import shiboken6
from PySide6.QtCore import QCoreApplication, QRectF, QSize, QSizeF, Qt, QUrl, Signal
from PySide6.QtGui import (
    QDesktopServices,
    QPainter,
    QPalette,
    QPyTextObject,
    QResizeEvent,
    QTextCursor,
    QTextDocument,
    QTextFormat,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QTextBrowser,
    QWidget,
)

from app.ui.tasks.pool import TaskPool

log = logging.getLogger(__name__)

#: The only link schemes handed to the system browser.
OPENABLE_SCHEMES = frozenset({"http", "https"})
#: Citation links ("[report.pdf p. 12]"), opened inside the app and never by the system.
CITATION_SCHEME = "scout-cite"

# Size policy. Converting markdown runs on the render pool, but QTextDocument's HTML import and
# layout can only run on the GUI thread and grow with the text: a 3,400-row table (242 KB) holds
# it ~0.5 s on a 2-core CI machine even converted elsewhere, while setPlainText of the same text
# and its layout take ~50 ms (figures: bench/render.py).
#: Past this many characters markdown is shown as plain text until the user asks for formatting
#: (40,000 characters of prose cost the GUI thread ~10 ms formatted, of highlighted code ~60 ms).
MAX_FORMATTED_CHARS = 40_000
#: Past this many "|" likewise: a table cell costs the layout ~17 µs, about 40 times a character
#: of prose, and counting "|" (an upper bound on the cells) takes microseconds.
MAX_FORMATTED_CELLS = 1_000
#: Beyond these even the user's request is refused: the GUI-thread part would pass ~0.6 s here
#: (and several seconds on a slow machine).
MAX_FORMATTED_ON_REQUEST_CHARS = 300_000
MAX_FORMATTED_ON_REQUEST_CELLS = 30_000
#: Markdown this short is converted on the spot (~2 ms): quicker than a trip through the pool,
#: and the bubble never flashes from plain to formatted text.
SYNC_RENDER_CHARS = 2_000

PLAIN_NOTE = "Shown as plain text (large answer)"
TOO_LARGE_NOTE = "Shown as plain text (too large to format)"
FORMATTING_NOTE = "Formatting…"
FORMAT_BUTTON = "Render as formatted"


def too_large_to_format(
    text: str, max_chars: int = MAX_FORMATTED_CHARS, max_cells: int = MAX_FORMATTED_CELLS
) -> bool:
    """Whether QTextDocument would take long to lay `text` out formatted (cost: one count).

    Args:
        text: markdown.
        max_chars: the most characters formatted.
        max_cells: the most table cells formatted, counted as "|" (each cell has at least one).

    Returns:
        True when the text is over either limit.
    """
    return len(text) > max_chars or text.count("|") > max_cells


class TextDisplay(enum.Enum):
    """How a `SafeMarkdownView` shows its text now."""

    PLAIN = "plain"  #: plain text given as such (a streaming answer)
    FORMATTED = "formatted"  #: markdown, rendered
    FORMATTING = "formatting"  #: markdown shown as plain text while the pool renders it
    LARGE = "large"  #: markdown shown as plain text because of its size (the user may format it)
    TOO_LARGE = "too large"  #: markdown shown as plain text, too large to format even on request


_render_tasks: TaskPool | None = None


def render_tasks() -> TaskPool:
    """The one pool every view converts markdown on (made at first use).

    One thread: renders finish in the order asked and the other core stays with the GUI. It is
    owned by the application object and drained when the application is about to quit, so no
    conversion is still running Python while the interpreter shuts down.

    Returns:
        The app-wide pool.
    """
    global _render_tasks
    if _render_tasks is None or not shiboken6.isValid(_render_tasks):
        app = QCoreApplication.instance()
        _render_tasks = TaskPool(1, app)
        app.aboutToQuit.connect(_render_tasks.shutdown)
    return _render_tasks


class _Ticket:
    """Which text a view shows now; a queued render of an older one skips its work.

    Plain Python (no Qt), so the pool thread may read it: a newer text has only to bump it.
    """

    def __init__(self) -> None:
        self.generation = 0

    def advance(self) -> int:
        self.generation += 1
        return self.generation


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


class _LargeTextNote(QWidget):
    """The strip above a large answer shown as plain text, offering to format it anyway."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("largeTextNote")
        self.label = QLabel(PLAIN_NOTE, self)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setForegroundRole(QPalette.ColorRole.PlaceholderText)  # a remark, not the text
        self.button = QPushButton(FORMAT_BUTTON, self)
        self.button.setObjectName("renderFormattedButton")
        self.button.setAccessibleName(FORMAT_BUTTON)
        self.button.setToolTip("Format this answer as markdown (it may take a moment)")
        self.button.setFlat(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 0, 4)  # in line with the text (the document's margin)
        layout.addWidget(self.label)
        layout.addWidget(self.button)
        layout.addStretch(1)
        self.hide()

    def say(self, text: str, offer_format: bool) -> None:
        """Show the note.

        Args:
            text: why the answer is plain, or that it is being formatted.
            offer_format: whether to offer the "Render as formatted" button.
        """
        self.label.setText(text)
        self.button.setVisible(offer_format)
        self.show()


class SafeMarkdownView(QTextBrowser):
    """Shows markdown (rendered by `app.core.render`) or streamed plain text, as tall as its text.

    It never loads a resource: the view and its document answer nothing for every URL, and images
    are laid out as nothing, so an `<img src>` naming a local file or a web address reads nothing
    (`render_markdown` emits no images in the first place; this is the second wall). A clicked
    link is offered to the browser only if it is http(s) and the user says yes to `confirm_link`;
    a citation link (`scout-cite:`, put there by `citation_links`) is only reported.

    It never holds the GUI thread long: markdown longer than `SYNC_RENDER_CHARS` is converted on
    the shared `render_tasks` pool (the plain text shows meanwhile, and a newer text always wins
    over a render still on its way), and markdown over the size policy (`too_large_to_format`)
    stays plain text under a note that offers to format it.

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
    #: (no payload): markdown rendered on the pool replaced the plain text shown meanwhile, so
    #: whatever was put on the document (citation links, box highlights) must be put on again.
    markdown_rendered = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._markdown: str | None = None  # the markdown shown (None: plain text was given)
        self._display = TextDisplay.PLAIN
        self._ticket = _Ticket()
        self._note = _LargeTextNote(self)
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
        self._note.button.clicked.connect(self._on_note_button_clicked)
        self._update_height()

    def loadResource(self, kind: int, name: QUrl) -> object:  # noqa: N802 (Qt's name)
        """Load nothing, whatever the URL: model output must not read files or reach the net."""
        log.debug("refused to load resource %s", name.toString())
        return None

    @property
    def display(self) -> TextDisplay:
        """How the text is shown now."""
        return self._display

    @property
    def large_text_note(self) -> QWidget:
        """The note above a large answer shown as plain text (hidden otherwise)."""
        return self._note

    def set_markdown(self, text: str) -> None:
        """Replace the content with `text` rendered as safe markdown, never holding the GUI long.

        Short text is rendered at once; longer text shows as plain text at once and formatted
        when the pool has converted it (`markdown_rendered`); text over the size policy stays
        plain (`TextDisplay.LARGE`) until `render_formatted` is called.

        Args:
            text: untrusted markdown.
        """
        generation = self._ticket.advance()  # whatever is on its way for an older text is void
        self._markdown = text
        if too_large_to_format(text):
            self.setPlainText(text)
            self._set_display(self._large_display(text))
        elif len(text) <= SYNC_RENDER_CHARS:
            # markdown-it + pygments take ~0.2 s to import: paid at the first answer, not at start.
            from app.core import render

            self.setHtml(render.render_markdown(text, code_style=self.code_style).strip())
            self._set_display(TextDisplay.FORMATTED)
        else:
            self.setPlainText(text)  # readable at once; the formatted text follows
            self._render_on_pool(text, generation)

    def render_formatted(self) -> bool:
        """Format a large answer shown as plain text, on the pool (the note's button does this).

        Returns:
            True when a render started; False when the text is not large markdown or is too
            large to format even on request.
        """
        text = self._markdown
        if text is None or self._display is not TextDisplay.LARGE:
            return False
        self._render_on_pool(text, self._ticket.advance(), asked=True)
        return True

    def set_plain(self, text: str) -> None:
        """Replace the content with plain text (the start of a streamed answer).

        Args:
            text: shown as is.
        """
        self._ticket.advance()
        self._markdown = None
        self.setPlainText(text)
        self._set_display(TextDisplay.PLAIN)

    def append_plain(self, text: str) -> None:
        """Add plain text at the very end, touching nothing before it (cost grows with `text` only).

        Args:
            text: shown as is; newlines start new paragraphs.
        """
        if self._display is not TextDisplay.PLAIN:  # plain text given now wins over markdown
            self._ticket.advance()
            self._markdown = None
            self._set_display(TextDisplay.PLAIN)
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

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        if not self._note.isHidden():
            self._note.setGeometry(0, 0, self.width(), self.viewportMargins().top())

    def _large_display(self, text: str) -> TextDisplay:
        on_request = (MAX_FORMATTED_ON_REQUEST_CHARS, MAX_FORMATTED_ON_REQUEST_CELLS)
        too_large = too_large_to_format(text, *on_request)
        return TextDisplay.TOO_LARGE if too_large else TextDisplay.LARGE

    def _render_on_pool(self, text: str, generation: int, *, asked: bool = False) -> None:
        # Looked up now, on the GUI thread: tests count calls by replacing the module's function.
        from app.core import render

        convert, style, ticket = render.render_markdown, self.code_style, self._ticket

        def work() -> str | None:
            if ticket.generation != generation:
                return None  # superseded while queued: not worth converting
            # Whitespace after the last block would show as a stray space on a line of its own.
            return convert(text, code_style=style).strip()

        view = weakref.ref(self)  # a deleted bubble must not be kept alive by its render

        def done(html: str | None) -> None:
            target = view()
            if target is not None and shiboken6.isValid(target):
                target._on_render_done(generation, html)

        def failed(error: str) -> None:
            target = view()
            if target is not None and shiboken6.isValid(target):
                target._on_render_failed(generation, error)

        self._set_display(TextDisplay.FORMATTING, asked=asked)
        render_tasks().run(work, done, failed)

    def _on_render_done(self, generation: int, html: str | None) -> None:
        if html is None or generation != self._ticket.generation:
            return  # a newer text (or plain text) replaced the one rendered
        # Bounded: only text within the size policy (or the on-request limit) gets here.
        self.setHtml(html)
        self._set_display(TextDisplay.FORMATTED)
        self.markdown_rendered.emit()

    def _on_render_failed(self, generation: int, error: str) -> None:
        if generation != self._ticket.generation:
            return
        log.error("could not render markdown: %s", error)
        self._set_display(TextDisplay.PLAIN)  # the plain text stays: readable, just unformatted

    def _set_display(self, display: TextDisplay, *, asked: bool = False) -> None:
        self._display = display
        if display is TextDisplay.LARGE:
            self._note.say(PLAIN_NOTE, offer_format=True)
        elif display is TextDisplay.TOO_LARGE:
            self._note.say(TOO_LARGE_NOTE, offer_format=False)
        elif display is TextDisplay.FORMATTING and asked:
            self._note.say(FORMATTING_NOTE, offer_format=False)
        else:  # formatted, plain, or formatting text of ordinary size (a moment: no note)
            self._note.hide()
        self._place_note()

    def _place_note(self) -> None:
        # The note sits in a strip above the text (the viewport's top margin), so it scrolls
        # with the bubble, shows and hides with the view, and leaves the text untouched.
        top = self._note.sizeHint().height() if not self._note.isHidden() else 0
        if self.viewportMargins().top() != top:
            self.setViewportMargins(0, top, 0, 0)
        if top:
            self._note.setGeometry(0, 0, self.width(), top)
        self._update_height()

    def _on_note_button_clicked(self) -> None:
        self.render_formatted()

    def _content_height(self) -> int:
        document: QTextDocument = self.document()
        height = math.ceil(document.size().height())
        margins = self.contentsMargins()
        height += margins.top() + margins.bottom() + self.viewportMargins().top()
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
