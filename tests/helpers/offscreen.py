"""Qt on the offscreen test platform: its harmless warning, and files dropped as a user would."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

# The offscreen platform cannot resize windows to their size hints and says so for every layout
# change of a top-level window; that is a limit of the test platform, not a bug of ours.
OFFSCREEN_NOISE = "This plugin does not support propagateSizeHints"


def drop_files(target: QWidget, paths: Sequence[Path]) -> tuple[QDragEnterEvent, QDropEvent]:
    """Drag local files onto `target` and drop them, as a file manager would.

    Qt delivers a drop only to a widget that accepted the drag's enter event, so both are sent.

    Returns:
        The enter and drop events (to check they were accepted).
    """
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    args = (
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    enter = QDragEnterEvent(QPoint(20, 20), *args)
    QApplication.sendEvent(target, enter)
    drop = QDropEvent(QPointF(20, 20), *args)
    QApplication.sendEvent(target, drop)
    return enter, drop
