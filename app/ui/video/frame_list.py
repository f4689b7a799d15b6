"""The video panel's results list: time, thumbnail, answer and boxes of each sampled frame."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QKeyEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QTextLayout,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from app.core.messages import StopReason
from app.ui.video.timeline import TimelineFrame, clock
from app.ui.widgets.plain_text import plain_html

#: The item data role that carries the row's `TimelineFrame`.
FRAME_ROLE = Qt.ItemDataRole.UserRole + 1
_THUMB = QSize(96, 54)
_ROW_PX = 74
_PAD = 8
_ANSWER_LINES = 3
_Index = QModelIndex | QPersistentModelIndex


def answer_line(frame: TimelineFrame) -> str:
    """What the list says about a frame's answer (also its accessible text)."""
    if frame.waiting:
        return "Waiting for its answer…"
    if frame.answer is None:
        return "Not asked yet"
    text = " ".join(frame.answer.split()) or "(no answer)"
    if frame.stop_reason is StopReason.CANCELLED:
        text += " (stopped)"
    return text


class FrameListModel(QAbstractListModel):
    """The sampled frames of the clip shown, one row each (a list of `TimelineFrame`)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._frames: list[TimelineFrame] = []

    def set_frames(self, frames: Sequence[TimelineFrame]) -> None:
        """Show these frames (the objects are shared; call `frame_changed` after editing one)."""
        self.beginResetModel()
        self._frames = list(frames)
        self.endResetModel()

    def frames(self) -> list[TimelineFrame]:
        """The frames shown, in time order."""
        return list(self._frames)

    def frame_changed(self, position: int) -> None:
        """Repaint one row after its frame was edited."""
        if 0 <= position < len(self._frames):
            index = self.index(position)
            self.dataChanged.emit(index, index)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 (Qt API)
        return 0 if parent.isValid() else len(self._frames)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self._frames):
            return None
        frame = self._frames[index.row()]
        if role == FRAME_ROLE:
            return frame
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            boxes = f" · {len(frame.boxes)} boxes" if frame.boxes else ""
            return f"{clock(frame.time_s)}{boxes} — {answer_line(frame)}"
        if role == Qt.ItemDataRole.ToolTipRole and frame.answer:
            return plain_html(frame.answer)
        return None


class FrameDelegate(QStyledItemDelegate):
    """Paints a frame row: thumbnail, time and box count, then up to three lines of answer."""

    def sizeHint(self, option: QStyleOptionViewItem, index: _Index) -> QSize:  # noqa: N802 (Qt API)
        return QSize(max(200, option.rect.width()), _ROW_PX)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        frame = index.data(FRAME_ROLE)
        if not isinstance(frame, TimelineFrame):
            return
        palette: QPalette = option.palette
        rect: QRect = option.rect
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        card = QRectF(rect.adjusted(4, 2, -4, -2))
        if selected or hovered:
            fill = palette.color(QPalette.ColorRole.Highlight)
            fill.setAlpha(60 if selected else 25)
            path = QPainterPath()
            path.addRoundedRect(card, 8, 8)
            painter.fillPath(path, fill)
        thumb = QRect(rect.left() + _PAD + 4, rect.top() + (_ROW_PX - _THUMB.height()) // 2,
                      _THUMB.width(), _THUMB.height())  # fmt: skip
        self._paint_thumb(painter, frame, thumb)
        text_left = thumb.right() + _PAD + 2
        width = rect.right() - _PAD - text_left
        head = QFont(option.font)
        head.setBold(True)
        painter.setFont(head)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        head_rect = QRect(text_left, rect.top() + 6, width, QFontMetrics(head).height())
        painter.drawText(head_rect, Qt.AlignmentFlag.AlignLeft, clock(frame.time_s))
        self._paint_badge(painter, frame, head_rect, option.font, palette)
        muted = frame.answer is None or frame.waiting
        painter.setFont(option.font)
        colour = palette.color(
            QPalette.ColorRole.PlaceholderText if muted else QPalette.ColorRole.Text
        )
        painter.setPen(colour)
        top = head_rect.bottom() + 3
        _draw_wrapped(
            painter, answer_line(frame), QRect(text_left, top, width, rect.bottom() - top)
        )
        painter.restore()

    def _paint_thumb(self, painter: QPainter, frame: TimelineFrame, target: QRect) -> None:
        path = QPainterPath()
        path.addRoundedRect(QRectF(target), 5, 5)
        painter.fillPath(path, QColor("#2a2c31"))
        if frame.thumb.isNull():
            return
        image = frame.thumb
        scale = min(target.width() / image.width(), target.height() / image.height())
        w, h = image.width() * scale, image.height() * scale
        placed = QRectF(target.left() + (target.width() - w) / 2,
                        target.top() + (target.height() - h) / 2, w, h)  # fmt: skip
        painter.save()
        painter.setClipPath(path)
        painter.drawImage(placed, image)
        painter.restore()

    def _paint_badge(
        self, painter: QPainter, frame: TimelineFrame, row: QRect, font: QFont, palette: QPalette
    ) -> None:
        if not frame.boxes:
            return
        small = QFont(font)
        small.setPointSizeF(max(7.0, font.pointSizeF() - 1))
        text = "1 box" if len(frame.boxes) == 1 else f"{len(frame.boxes)} boxes"
        metrics = QFontMetrics(small)
        badge = QRectF(row.right() - metrics.horizontalAdvance(text) - 12, row.top(),
                       metrics.horizontalAdvance(text) + 12, row.height())  # fmt: skip
        path = QPainterPath()
        path.addRoundedRect(badge, badge.height() / 2, badge.height() / 2)
        painter.fillPath(path, QColor("#34c759"))
        painter.setFont(small)
        painter.setPen(QColor("#0b2e14"))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)


def _draw_wrapped(painter: QPainter, text: str, rect: QRect) -> None:
    """Word-wrap `text` into `rect`, at most `_ANSWER_LINES` lines, the last one elided."""
    metrics = QFontMetrics(painter.font())
    layout = QTextLayout(text, painter.font())
    layout.beginLayout()
    lines: list[tuple[int, int]] = []
    while len(lines) < _ANSWER_LINES:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(rect.width())
        lines.append((line.textStart(), line.textLength()))
    layout.endLayout()
    y = rect.top()
    for number, (start, length) in enumerate(lines):
        piece = text[start : start + length]
        if number == len(lines) - 1 and start + length < len(text):
            piece = metrics.elidedText(text[start:], Qt.TextElideMode.ElideRight, rect.width())
        if y + metrics.height() > rect.bottom() + 2:
            break
        painter.drawText(QRect(rect.left(), y, rect.width(), metrics.height()),
                         Qt.AlignmentFlag.AlignLeft, piece.rstrip())  # fmt: skip
        y += metrics.height()


class FrameList(QListView):
    """The results list: a click selects a frame; a double click or Enter opens it in the viewer."""

    #: int: the frame at this position was picked.
    frame_selected = Signal(int)
    #: int: the frame at this position was opened (double click or Enter).
    frame_activated = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("videoFrameList")
        self.setAccessibleName("Sampled frames and their answers")
        #: What the empty list says.
        self.placeholder = "Sampled frames and their answers appear here."
        self.frame_model = FrameListModel(self)
        self.setModel(self.frame_model)
        self.setItemDelegate(FrameDelegate(self))
        self.setMouseTracking(True)
        self.setUniformItemSizes(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.selectionModel().currentRowChanged.connect(self._on_selection_current_row_changed)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.doubleClicked.connect(lambda index: self.frame_activated.emit(index.row()))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        super().paintEvent(event)
        if self.frame_model.rowCount() == 0 and self.placeholder:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            area = self.viewport().rect().adjusted(16, 16, -16, -16)
            flags = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
            painter.drawText(area, int(flags) | int(Qt.TextFlag.TextWordWrap), self.placeholder)
            painter.end()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.frame_activated.emit(self.currentIndex().row())
            return
        super().keyPressEvent(event)

    def select_frame(self, position: int | None) -> None:
        """Select and show a row without emitting `frame_selected`."""
        self.blockSignals(True)
        self.selectionModel().blockSignals(True)
        try:
            if position is None or not 0 <= position < self.frame_model.rowCount():
                self.clearSelection()
                self.setCurrentIndex(QModelIndex())
            else:
                index = self.frame_model.index(position)
                self.setCurrentIndex(index)
                self.scrollTo(index)
        finally:
            self.selectionModel().blockSignals(False)
            self.blockSignals(False)
        self.viewport().update()

    def _on_selection_current_row_changed(
        self, current: QModelIndex, _previous: QModelIndex
    ) -> None:
        if current.isValid():
            self.frame_selected.emit(current.row())
