"""A read-only view of a cited file, scrolled to the cited line and with that line highlighted."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFontDatabase, QTextCursor, QTextFormat
from PySide6.QtWidgets import QDialog, QPlainTextEdit, QTextEdit, QVBoxLayout, QWidget

from app.ui.widgets.plain_text import plain_label, plain_title

#: More text than this is cut (with a note): a view is for reading around a citation.
MAX_CHARS = 4_000_000


class SourceView(QDialog):
    """Shows the text of a cited file or page; deletes itself when closed.

    Args:
        title: what is shown ("src/app/main.py", "report.pdf, page 12").
        text: the file's text.
        first_line: the number of the text's first line in its file.
        line: the cited line (None: the top).
        parent: the dialog's parent.
    """

    def __init__(
        self,
        title: str,
        text: str,
        first_line: int = 1,
        line: int | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("SourceView")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        self.setWindowTitle(plain_title(title))
        self.first_line = first_line
        cut = len(text) > MAX_CHARS
        self.editor = QPlainTextEdit(self)
        self.editor.setObjectName("SourceText")
        self.editor.setReadOnly(True)
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.editor.setPlainText(text[:MAX_CHARS])
        self.editor.setAccessibleName(f"Text of {title}")
        where = f"line {line}" if line else "the start"
        caption = f"{title} — read-only, at {where}"
        if cut:
            caption += f" (only the first {MAX_CHARS:,} characters are shown)"
        self.caption = plain_label(caption, self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.caption)
        layout.addWidget(self.editor, 1)
        self.resize(820, 600)
        if line:
            self.go_to_line(line)

    def go_to_line(self, line: int) -> None:
        """Scroll to a line (numbered as in its file) and highlight it."""
        block_number = max(0, min(line - self.first_line, self.editor.blockCount() - 1))
        block = self.editor.document().findBlockByNumber(block_number)
        cursor = QTextCursor(block)
        self.editor.setTextCursor(cursor)
        self.editor.centerCursor()
        selection = QTextEdit.ExtraSelection()
        fmt = selection.format  # type: ignore[attr-defined]
        fmt.setBackground(QColor(255, 214, 0, 90))
        fmt.setProperty(QTextFormat.Property.FullWidthSelection, True)
        selection.format = fmt  # type: ignore[attr-defined]
        selection.cursor = cursor  # type: ignore[attr-defined]
        self.editor.setExtraSelections([selection])

    def current_line(self) -> int:
        """The line (numbered as in its file) the cursor is on."""
        return self.editor.textCursor().blockNumber() + self.first_line
