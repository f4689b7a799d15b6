"""User, file and model text shown by Qt exactly as written, never interpreted as markup.

Qt guesses the format of a tooltip, of a `QLabel` left at `Qt.AutoText` and of a message box's
text: `Qt.mightBeRichText` says "rich" as soon as the first line holds a known tag, anywhere in
it. A chat titled, a file named or an answer holding `<img src="/dev/zero">` would then make Qt
open that file when the text is shown — any local file read, a GUI thread blocked forever on a
FIFO, memory without bound. Every place that shows such text goes through this module.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget


def plain_html(text: str) -> str:
    """Rich text that Qt shows as exactly `text`, for places where Qt guesses the format.

    Tooltips (`setToolTip`, `Qt.ToolTipRole`, `QTextCharFormat.setToolTip`) and dialog labels
    with no plain-text switch (`QInputDialog`) cannot be told "this is plain": Qt guesses. So the
    text is escaped and marked as rich on purpose; nothing in it is markup any more.
    `white-space: pre-wrap` keeps its spaces, tabs and line breaks as they are and still wraps a
    long line. (Qt's own `Qt.convertFromPlainText` collapses runs of spaces and blank lines, or,
    in `WhiteSpacePre` mode, never wraps.)

    Args:
        text: plain text from the user, a file or the model.

    Returns:
        The HTML to show; "" for "" (no tooltip at all rather than an empty box).
    """
    if not text:
        return ""
    return f"<p style='white-space:pre-wrap'>{html.escape(text, quote=False)}</p>"


def plain_label(text: str = "", parent: QWidget | None = None) -> QLabel:
    """A label that shows its text as written: set later with `setText`, it stays plain too.

    Args:
        text: what it says first.
        parent: the usual widget parent.

    Returns:
        The label, in `Qt.PlainText` format.
    """
    label = QLabel(text, parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def plain_title(text: str) -> str:
    """A window title that reads as `text`: Qt hides a `[*]` in a title (its "modified" mark).

    Window titles are never rich text, but "[*]" in a file name would vanish; doubled, Qt shows
    it once.

    Args:
        text: a title holding a file or chat name.

    Returns:
        The title to pass to `setWindowTitle`.
    """
    return text.replace("[*]", "[*][*]")


def plain_button_text(text: str) -> str:
    """Button text that reads as `text`: Qt takes a "&" in it as a keyboard-shortcut mark.

    Buttons never render markup, but "Tom & Jerry.png" on one would lose its "&" and bind Alt+J.

    Args:
        text: a button's text holding a file name.

    Returns:
        The text with each "&" doubled.
    """
    return text.replace("&", "&&")


def plain_message_box(
    parent: QWidget | None,
    icon: QMessageBox.Icon,
    title: str,
    text: str,
    buttons: QMessageBox.StandardButton = QMessageBox.StandardButton.Ok,
) -> QMessageBox:
    """A message box whose text is shown as written (it quotes paths and file names).

    The static `QMessageBox.critical` / `about` guess the text's format; this one never does.

    Args:
        parent: the window it belongs to (None at start-up, before there is one).
        icon: the standard icon.
        title: its window title.
        text: the message.
        buttons: the buttons it offers.

    Returns:
        The box, not shown yet (`exec()` it).
    """
    box = QMessageBox(icon, plain_title(title), text, buttons, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    return box
