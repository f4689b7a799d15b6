"""Bring a side dock (the image viewer, the video panel) forward at a width that is useful."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow


def present_dock(dock: QDockWidget, *, min_width: int = 420, share: float = 0.4) -> None:
    """Show `dock` and raise it; when it was hidden, widen it to a share of its window.

    Qt reopens a dock at its last (often tiny) width; a fixed share of the window shows an image
    at a size worth looking at. An already visible dock keeps the width the user gave it.

    Args:
        dock: the dock to show.
        min_width: the least width in pixels it opens at.
        share: the part of the main window's width it opens at, when that is wider.
    """
    if not dock.isVisible():
        dock.show()
        window = dock.parentWidget()
        if isinstance(window, QMainWindow):
            width = max(min_width, int(window.width() * share))
            window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
    dock.raise_()
