"""The viewer's side list of boxes: colour, label and coordinates, copyable, linked to hover."""

from __future__ import annotations

from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QColor,
    QFont,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QPainter,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from app.ui.viewer.box_list_model import BOX_INDEX_ROLE, COORDS_ROLE, BoxListModel, copy_line

_ROW_HEIGHT = 40
_SWATCH = 12


class _BoxDelegate(QStyledItemDelegate):
    """Paints a row as a colour swatch, the label in bold and the coordinates beneath, muted."""

    def sizeHint(  # noqa: N802 (Qt API)
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        return QSize(option.rect.width(), _ROW_HEIGHT)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        painter.save()
        rect: QRect = option.rect
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        if selected or hovered:
            fill = palette.highlight().color() if selected else palette.midlight().color()
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(fill)
            painter.drawRoundedRect(rect.adjusted(2, 1, -2, -1), 6, 6)
        colour = index.data(Qt.ItemDataRole.DecorationRole)
        swatch = QRect(rect.left() + 10, rect.center().y() - _SWATCH // 2, _SWATCH, _SWATCH)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QColor(0, 0, 0, 90))
        painter.setBrush(colour if isinstance(colour, QColor) else QColor("gray"))
        painter.drawRoundedRect(swatch, 3, 3)
        text_colour = palette.highlightedText().color() if selected else palette.text().color()
        left = swatch.right() + 10
        label_rect = QRect(left, rect.top() + 3, rect.right() - left - 6, rect.height() // 2 - 1)
        coord_rect = QRect(left, rect.center().y() + 1, label_rect.width(), label_rect.height())
        bold = QFont(option.font)
        bold.setWeight(QFont.Weight.DemiBold)
        painter.setFont(bold)
        painter.setPen(text_colour)
        label = painter.fontMetrics().elidedText(
            str(index.data(Qt.ItemDataRole.DisplayRole)),
            Qt.TextElideMode.ElideRight,
            label_rect.width(),
        )
        painter.drawText(
            label_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, label
        )
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSizeF(max(7.0, option.font.pointSizeF() - 1))
        painter.setFont(mono)
        muted = QColor(text_colour)
        muted.setAlpha(170)
        painter.setPen(muted)
        coords = str(index.data(COORDS_ROLE))
        painter.drawText(
            coord_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, coords
        )
        painter.restore()


class BoxList(QListView):
    """Lists the boxes of the image shown; Ctrl+C copies "label: x1, y1, x2, y2" lines.

    Args:
        parent: the usual widget parent.
    """

    #: int: the message's box index under the pointer or selected (-1: none).
    box_hovered = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("boxList")
        self.setAccessibleName("Boxes")
        self.box_model = BoxListModel(self)
        self.setModel(self.box_model)
        self.setItemDelegate(_BoxDelegate(self))
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setMouseTracking(True)
        self.setUniformItemSizes(True)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_self_context_menu_requested)
        self.entered.connect(self._on_self_entered)
        self.copy_action = QAction("Copy coordinates", self)
        self.copy_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Copy))
        self.copy_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.copy_action.triggered.connect(self.copy_selected)
        self.copy_all_action = QAction("Copy all", self)
        self.copy_all_action.triggered.connect(self.copy_all)

    def lines(self, selected_only: bool = True) -> list[str]:
        """The clipboard lines: of the selected rows (all rows when none is selected).

        Args:
            selected_only: False gives every row's line.

        Returns:
            "label: x1, y1, x2, y2" per box, in list order.
        """
        rows = sorted(i.row() for i in self.selectionModel().selectedRows())
        if not selected_only or not rows:
            rows = list(range(self.box_model.rowCount()))
        items = [item for row in rows if (item := self.box_model.item(row)) is not None]
        return [copy_line(box, index) for index, box in items]

    def copy_selected(self) -> str:
        """Copy the selected boxes' lines (or all); returns the text copied."""
        text = "\n".join(self.lines())
        if text:
            QGuiApplication.clipboard().setText(text)
        return text

    def copy_all(self) -> str:
        """Copy every box's line; returns the text copied."""
        text = "\n".join(self.lines(selected_only=False))
        if text:
            QGuiApplication.clipboard().setText(text)
        return text

    def select_box(self, box_index: int | None) -> None:
        """Select the row of a box (None or an unknown index clears the selection)."""
        row = -1 if box_index is None else self.box_model.row_of(box_index)
        if row < 0:
            self.clearSelection()
            return
        index = self.box_model.index(row)
        flags = QItemSelectionModel.SelectionFlag
        self.selectionModel().setCurrentIndex(index, flags.ClearAndSelect | flags.Rows)
        self.scrollTo(index)

    def context_menu(self) -> QMenu:
        """Build the right-click menu (Copy coordinates, Copy all)."""
        menu = QMenu(self)
        menu.addAction(self.copy_action)
        menu.addAction(self.copy_all_action)
        return menu

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        # Item views claim Ctrl+C for themselves (they would copy the label alone).
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_selected()
            event.accept()
            return
        super().keyPressEvent(event)

    def leaveEvent(self, event: object) -> None:  # noqa: N802 (Qt API)
        self.box_hovered.emit(-1)
        super().leaveEvent(event)  # type: ignore[arg-type]

    def _on_self_entered(self, index: QModelIndex) -> None:
        value = index.data(BOX_INDEX_ROLE)
        self.box_hovered.emit(value if isinstance(value, int) else -1)

    def _on_self_context_menu_requested(self, pos: QPoint) -> None:
        menu = self.context_menu()
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        menu.popup(self.viewport().mapToGlobal(pos))
