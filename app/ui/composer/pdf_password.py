"""Asking for an encrypted PDF's password when it is attached."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QInputDialog, QLineEdit, QWidget

from app.ui.widgets.plain_text import plain_html

#: Asks for a PDF's password: (parent, file name, the last one was wrong) → password or None.
PasswordPrompt = Callable[[QWidget | None, str, bool], str | None]


def ask_pdf_password(parent: QWidget | None, name: str, wrong: bool) -> str | None:
    """The default `PasswordPrompt`: a password field in a small dialog.

    Args:
        parent: the dialog's parent.
        name: the PDF's file name.
        wrong: the password given last time was not right.

    Returns:
        The password typed, or None when the user cancelled.
    """
    if wrong:
        label = f"That password for “{name}” is not right. Try again:"
    else:
        label = f"“{name}” is password-protected. Enter its password to read it:"
    # The dialog's label guesses its format and offers no plain-text switch: escape the name.
    shown = plain_html(label)
    text, ok = QInputDialog.getText(parent, "PDF password", shown, QLineEdit.EchoMode.Password)
    return text if ok and text else None
