"""The video timeline: a thumbnail strip to scrub, with a marker per sampled frame and its state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from app.core.messages import Box, StopReason

_LANE_PX = 16  # the marker lane above the strip
_STRIP_PX = 52
_RULER_PX = 16
_PAD_X = 8
_HIT_PX = 7  # a click this close to a marker picks its frame
_WAITING = QColor("#e0a100")
_BOXES = QColor("#34c759")
_STRIP_BACKGROUND = QColor("#2a2c31")


@dataclass
class TimelineFrame:
    """One sampled frame as the timeline and the frame list show it.

    Attributes:
        time_s: when it is in the clip.
        thumb: a small picture of it (null until made).
        answer: the answer about it (None: not asked, or not answered yet).
        boxes: the regions located in it, in its own pixels.
        stop_reason: how its answer ended.
        waiting: it is queued in the running frame-by-frame pass.
    """

    time_s: float
    thumb: QImage = field(default_factory=QImage)
    answer: str | None = None
    boxes: tuple[Box, ...] = ()
    stop_reason: StopReason | None = None
    waiting: bool = False

    @property
    def state(self) -> str:
        """ "waiting", "boxes" (answered with boxes), "answered" or "sampled"."""
        if self.waiting:
            return "waiting"
        if self.answer is not None:
            return "boxes" if self.boxes else "answered"
        return "sampled"


def clock(time_s: float) -> str:
    """A time as the timeline writes it ("00:12.400"; the video package is loaded by then)."""
    from app.core.video.timecode import format_time

    return format_time(time_s)


class VideoTimeline(QWidget):
    """The clip from start to end: thumbnails, a playhead, and one marker per sampled frame.

    Click or drag on the strip scrubs; a click on (or next to) a marker picks that frame;
    Left/Right step the playhead by a second (Shift: a tenth).
    """

    #: float: the user moved the playhead to this time (seconds from the clip's start).
    scrubbed = Signal(float)
    #: int: the user clicked the marker of this sampled frame (its position).
    frame_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("videoTimeline")
        self.setAccessibleName("Video timeline")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(_LANE_PX + _STRIP_PX + _RULER_PX + 4)
        self._duration = 0.0
        self._strip: list[tuple[float, QImage]] = []
        self._frames: list[TimelineFrame] = []
        self._position = 0.0
        self._selected: int | None = None
        self._dragging = False

    # -- content -----------------------------------------------------------------------------

    def set_duration(self, duration_s: float) -> None:
        """Say how long the clip is (0: no clip); clears the strip and the markers."""
        self._duration = max(0.0, duration_s)
        self._strip, self._frames = [], []
        self._position, self._selected = 0.0, None
        self.update()

    def duration(self) -> float:
        """The clip's length in seconds."""
        return self._duration

    def set_strip(self, thumbs: Sequence[tuple[float, QImage]]) -> None:
        """Show these (time, picture) pairs as the strip, spread evenly over the width."""
        self._strip = list(thumbs)
        self.update()

    def strip_size(self) -> int:
        """How many pictures the strip shows."""
        return len(self._strip)

    def set_frames(self, frames: Sequence[TimelineFrame]) -> None:
        """Show a marker per sampled frame (the list is read, not copied: call `update` after)."""
        self._frames = list(frames)
        self.update()

    def set_position(self, time_s: float) -> None:
        """Move the playhead (does not emit `scrubbed`)."""
        self._position = min(max(time_s, 0.0), self._duration)
        self.update()

    def position(self) -> float:
        """The playhead's time."""
        return self._position

    def set_selected(self, position: int | None) -> None:
        """Emphasise one frame's marker (None: none)."""
        self._selected = position
        self.update()

    # -- geometry ----------------------------------------------------------------------------

    def strip_rect(self) -> QRect:
        """Where the thumbnails are painted."""
        return QRect(_PAD_X, _LANE_PX + 2, max(1, self.width() - 2 * _PAD_X), _STRIP_PX)

    def x_of(self, time_s: float) -> float:
        """The widget column of a time."""
        strip = self.strip_rect()
        if self._duration <= 0:
            return float(strip.left())
        return strip.left() + strip.width() * min(max(time_s / self._duration, 0.0), 1.0)

    def time_at(self, x: float) -> float:
        """The time under a widget column (clamped into the clip)."""
        strip = self.strip_rect()
        fraction = (x - strip.left()) / max(1, strip.width())
        return min(max(fraction, 0.0), 1.0) * self._duration

    def marker_at(self, x: float) -> int | None:
        """The frame whose marker is nearest `x`, if one is within reach."""
        best, best_distance = None, float(_HIT_PX)
        for position, frame in enumerate(self._frames):
            distance = abs(self.x_of(frame.time_s) - x)
            if distance <= best_distance:
                best, best_distance = position, distance
        return best

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(420, self.height())

    # -- painting ----------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        strip = self.strip_rect()
        clip = QPainterPath()
        clip.addRoundedRect(QRectF(strip), 6, 6)
        painter.fillPath(clip, _STRIP_BACKGROUND)
        painter.save()
        painter.setClipPath(clip)
        self._paint_strip(painter, strip)
        painter.restore()
        if self.hasFocus():
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 1.5))
            painter.drawPath(clip)
        self._paint_markers(painter, strip, palette)
        self._paint_playhead(painter, strip, palette)
        self._paint_ruler(painter, strip, palette)
        painter.end()

    def _paint_strip(self, painter: QPainter, strip: QRect) -> None:
        if not self._strip:
            return
        cell = strip.width() / len(self._strip)
        for i, (_time, image) in enumerate(self._strip):
            if image.isNull():
                continue
            target = QRectF(strip.left() + i * cell, strip.top(), cell + 0.5, strip.height())
            # Cover the cell, cropping the picture's middle, as film-strip views do.
            scale = max(target.width() / image.width(), target.height() / image.height())
            w, h = target.width() / scale, target.height() / scale
            source = QRectF((image.width() - w) / 2, (image.height() - h) / 2, w, h)
            painter.drawImage(target, image, source)
        if self._frames:
            painter.fillRect(strip, QColor(0, 0, 0, 70))  # let the markers' lines stand out

    def _paint_markers(self, painter: QPainter, strip: QRect, palette: QPalette) -> None:
        accent = palette.color(QPalette.ColorRole.Highlight)
        colours = {"waiting": _WAITING, "boxes": _BOXES, "answered": accent}
        for position, frame in enumerate(self._frames):
            x = self.x_of(frame.time_s)
            colour = colours.get(frame.state, QColor(255, 255, 255, 200))
            selected = position == self._selected
            line = QColor(colour)
            line.setAlpha(255 if selected else 150)
            painter.setPen(QPen(line, 2 if selected else 1))
            painter.drawLine(QPointF(x, strip.top()), QPointF(x, strip.bottom()))
            radius = 5.5 if selected else 4.0
            centre = QPointF(x, _LANE_PX / 2 + 1)
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Window), 1.5))
            painter.setBrush(colour if frame.state != "sampled" else palette.color(
                QPalette.ColorRole.Mid))  # fmt: skip
            painter.drawEllipse(centre, radius, radius)

    def _paint_playhead(self, painter: QPainter, strip: QRect, palette: QPalette) -> None:
        if self._duration <= 0:
            return
        x = self.x_of(self._position)
        painter.setPen(QPen(QColor("#ffffff"), 2))
        painter.drawLine(QPointF(x, strip.top() - 1), QPointF(x, strip.bottom() + 1))
        painter.setPen(QPen(QColor(0, 0, 0, 120), 1))
        painter.drawLine(QPointF(x + 1.5, strip.top()), QPointF(x + 1.5, strip.bottom()))

    def _paint_ruler(self, painter: QPainter, strip: QRect, palette: QPalette) -> None:
        if self._duration <= 0:
            return
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        font = painter.font()
        font.setPointSizeF(max(7.0, font.pointSizeF() - 1.5))
        painter.setFont(font)
        top = strip.bottom() + 2
        row = QRect(strip.left(), top, strip.width(), _RULER_PX)
        middle = Qt.AlignmentFlag.AlignVCenter
        start, end, now = clock(0.0), clock(self._duration), clock(self._position)
        metrics = painter.fontMetrics()
        painter.drawText(row, Qt.AlignmentFlag.AlignLeft | middle, start)
        painter.drawText(row, Qt.AlignmentFlag.AlignRight | middle, end)
        # The playhead's time sits under it, unless it would run into the ends' labels.
        width = metrics.horizontalAdvance(now) + 8
        left = round(self.x_of(self._position) - width / 2)
        if left > row.left() + metrics.horizontalAdvance(start) + 4 and (
            left + width < row.right() - metrics.horizontalAdvance(end) - 4
        ):
            painter.setPen(palette.color(QPalette.ColorRole.Text))
            painter.drawText(QRect(left, top, width, _RULER_PX), Qt.AlignmentFlag.AlignCenter, now)

    # -- input -------------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        if event.button() != Qt.MouseButton.LeftButton or self._duration <= 0:
            super().mousePressEvent(event)
            return
        x = event.position().x()
        marker = self.marker_at(x)
        if marker is not None and event.position().y() <= self.strip_rect().bottom():
            self.frame_clicked.emit(marker)
            return
        self._dragging = True
        self._scrub_to(x)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        x = event.position().x()
        if self._dragging:
            self._scrub_to(x)
        elif self._duration > 0:
            marker = self.marker_at(x)
            tip = clock(self.time_at(x))
            if marker is not None:
                frame = self._frames[marker]
                tip = f"Frame {marker + 1} of {len(self._frames)} · {clock(frame.time_s)}"
            QToolTip.showText(event.globalPosition().toPoint(), tip, self)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        self._dragging = False
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        step = 0.1 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1.0
        if event.key() in (Qt.Key.Key_Left, Qt.Key.Key_Right) and self._duration > 0:
            sign = -1 if event.key() == Qt.Key.Key_Left else 1
            self.set_position(self._position + sign * step)
            self.scrubbed.emit(self._position)
            return
        super().keyPressEvent(event)

    def _scrub_to(self, x: float) -> None:
        self.set_position(self.time_at(x))
        self.scrubbed.emit(self._position)
