"""A Qt list model over located boxes: label, colour and pixel coordinates, one row per box."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt

from app.core.messages import Box
from app.ui.viewer.overlay_render import Colours, colour_of, display_label
from app.ui.widgets.plain_text import plain_html

_Index = QModelIndex | QPersistentModelIndex

BOX_ROLE = Qt.ItemDataRole.UserRole + 1  # the row's Box
BOX_INDEX_ROLE = Qt.ItemDataRole.UserRole + 2  # the box's index in its message (int)
COORDS_ROLE = Qt.ItemDataRole.UserRole + 3  # "x1, y1, x2, y2"


def coords_text(box: Box) -> str:
    """The box's corners as the list and the clipboard show them: "x1, y1, x2, y2"."""
    return f"{box.x1}, {box.y1}, {box.x2}, {box.y2}"


def copy_line(box: Box, index: int) -> str:
    """One clipboard line for a box: "label: x1, y1, x2, y2"."""
    return f"{display_label(box, index)}: {coords_text(box)}"


class BoxListModel(QAbstractListModel):
    """Read-only rows of (index in the message, box); the viewer replaces them per image."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[tuple[int, Box]] = []
        self._colours: Colours | None = None

    def set_boxes(self, boxes: Sequence[tuple[int, Box]], colours: Colours | None = None) -> None:
        """Replace every row.

        Args:
            boxes: (index in the message, box) pairs, in display order.
            colours: the message's label colours (None: each label's own).
        """
        self.beginResetModel()
        self._rows = list(boxes)
        self._colours = colours
        self.endResetModel()

    def row_of(self, box_index: int) -> int:
        """The row showing the message's box `box_index`, or -1."""
        for row, (index, _box) in enumerate(self._rows):
            if index == box_index:
                return row
        return -1

    def item(self, row: int) -> tuple[int, Box] | None:
        """The (index, box) pair at `row`, or None outside the list."""
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 (Qt API)
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        item = self.item(index.row()) if index.isValid() else None
        if item is None:
            return None
        box_index, box = item
        if role == Qt.ItemDataRole.DisplayRole:
            return display_label(box, box_index)
        if role == Qt.ItemDataRole.DecorationRole:
            return colour_of(box.label, self._colours)
        if role == Qt.ItemDataRole.ToolTipRole:
            size = f"{box.x2 - box.x1} × {box.y2 - box.y1} px"
            return plain_html(f"{display_label(box, box_index)}\n{coords_text(box)}  ({size})")
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return copy_line(box, box_index)
        if role == BOX_ROLE:
            return box
        if role == BOX_INDEX_ROLE:
            return box_index
        if role == COORDS_ROLE:
            return coords_text(box)
        return None
