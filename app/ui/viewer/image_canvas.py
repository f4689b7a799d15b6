"""The zoom-and-pan canvas of the image viewer: one image, its boxes, hover and the T toggle."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPoint, QPointF, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.core.messages import Box
from app.ui.viewer.overlay_render import (
    Colours,
    ViewTransform,
    compute_transform,
    paint_boxes,
    paint_image,
    paint_labels,
)

MIN_ZOOM = 0.02
MAX_ZOOM = 32.0
ZOOM_STEP = 1.25
_BACKGROUND = QColor("#2a2c31")  # a neutral grey frames photos in either theme
_SCALED_CACHE_LIMIT = 8_000  # px: past this edge length the scaled copy is not cached


class ImageCanvas(QWidget):
    """Shows one upright image with its boxes; wheel or +/- zoom, drag pans, T hides the boxes.

    All geometry goes through `transform()`, which asks `compute_transform` (the one owner of the
    view ↔ image mapping) and is used for painting and for hit-testing alike.
    """

    #: int: the message's box index under the pointer (-1: none).
    box_hovered = Signal(int)
    #: float: the zoom changed (view pixels per image pixel).
    zoom_changed = Signal(float)
    #: bool: boxes were shown (True) or hidden (False).
    boxes_visibility_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageCanvas")
        self.setAccessibleName("Image")
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 120)
        self._image = QImage()
        self._scaled: tuple[float, QPixmap] | None = None
        self._boxes: list[tuple[int, Box]] = []
        self._colours: Colours | None = None
        self._zoom: float | None = None  # None: fit
        self._center: QPointF | None = None
        self._boxes_visible = True
        self._highlighted: int | None = None
        self._drag_from: QPoint | None = None
        self._drag_center = QPointF()

    # -- content -----------------------------------------------------------------------------

    def set_image(
        self,
        image: QImage,
        boxes: Sequence[tuple[int, Box]] = (),
        colours: Colours | None = None,
    ) -> None:
        """Show an image (already upright) and its boxes; the view fits it.

        Args:
            image: the picture; a null image shows an empty canvas.
            boxes: (index in the message, box) pairs in this image's pixels.
            colours: the message's label colours (None: each label's own).
        """
        self._image = image
        self._scaled = None
        self._boxes = list(boxes)
        self._colours = colours
        self._zoom = None
        self._center = None
        self._highlighted = None
        self.zoom_changed.emit(self.transform().scale)
        self.update()

    def image(self) -> QImage:
        """The image shown."""
        return self._image

    def boxes(self) -> list[tuple[int, Box]]:
        """The (index, box) pairs drawn on this image."""
        return list(self._boxes)

    # -- geometry ----------------------------------------------------------------------------

    def transform(self) -> ViewTransform:
        """Image pixels → widget pixels for the current zoom, pan and widget size."""
        return compute_transform(self._image.size(), self.size(), self._zoom, self._center)

    def zoom(self) -> float:
        """View pixels per image pixel now."""
        return self.transform().scale

    def is_fit(self) -> bool:
        """Whether the view follows the widget's size (fit mode)."""
        return self._zoom is None

    def set_zoom(self, zoom: float | None, anchor: QPointF | None = None) -> None:
        """Zoom to `zoom` (None: fit), keeping the image point under `anchor` where it is.

        Args:
            zoom: view pixels per image pixel, clamped to a sane range; None fits the image.
            anchor: a widget point to hold still (the pointer for the wheel); None: the centre.
        """
        if self._image.isNull():
            return
        if zoom is None:
            self._zoom, self._center = None, None
        else:
            old = self.transform()
            zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
            point = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
            fixed = old.to_image(point)
            # The new centre puts `fixed` back under `point` at the new scale.
            self._center = QPointF(
                fixed.x() + (self.width() / 2 - point.x()) / zoom,
                fixed.y() + (self.height() / 2 - point.y()) / zoom,
            )
            self._zoom = zoom
        self.zoom_changed.emit(self.transform().scale)
        self.update()

    def zoom_in(self) -> None:
        """Zoom in one step around the centre."""
        self.set_zoom(self.zoom() * ZOOM_STEP)

    def zoom_out(self) -> None:
        """Zoom out one step around the centre."""
        self.set_zoom(self.zoom() / ZOOM_STEP)

    def fit(self) -> None:
        """Show the whole image, as large as the view allows."""
        self.set_zoom(None)

    def actual_size(self) -> None:
        """Show the image at 100 % (one image pixel per widget pixel)."""
        self.set_zoom(1.0)

    def center_on(self, point: QPointF) -> None:
        """Pan so an image point is at the view's centre (as far as the image edges allow)."""
        self._zoom = self.zoom()
        self._center = QPointF(point)
        self.update()

    def image_rect(self) -> QRect:
        """The widget rectangle the image covers (whole pixels)."""
        t = self.transform()
        left, top = t.view_x(0), t.view_y(0)
        return QRect(
            left, top, t.view_x(self._image.width()) - left, t.view_y(self._image.height()) - top
        )

    # -- boxes -------------------------------------------------------------------------------

    @property
    def boxes_visible(self) -> bool:
        """Whether boxes are drawn (T toggles)."""
        return self._boxes_visible

    def set_boxes_visible(self, visible: bool) -> None:
        """Show or hide every box and label."""
        if visible != self._boxes_visible:
            self._boxes_visible = visible
            self.boxes_visibility_changed.emit(visible)
            self.update()

    def toggle_boxes(self) -> None:
        """Hide the boxes if shown, show them if hidden (the T key)."""
        self.set_boxes_visible(not self._boxes_visible)

    @property
    def highlighted(self) -> int | None:
        """The message's box index emphasised now, or None."""
        return self._highlighted

    def set_highlighted(self, index: int | None) -> None:
        """Emphasise one box (by its index in the message), or none."""
        if index != self._highlighted:
            self._highlighted = index
            self.update()

    def box_at(self, point: QPointF) -> int | None:
        """The index of the smallest box under a widget point, or None."""
        if not self._boxes_visible:
            return None
        p = self.transform().to_image(point)
        hits = [
            ((b.x2 - b.x1) * (b.y2 - b.y1), index)
            for index, b in self._boxes
            if b.x1 <= p.x() < b.x2 and b.y1 <= p.y() < b.y2
        ]
        return min(hits)[1] if hits else None

    # -- Qt events ---------------------------------------------------------------------------

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(480, 360)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.fillRect(self.rect(), _BACKGROUND)
        if self._image.isNull():
            painter.end()
            return
        t = self.transform()
        paint_image(painter, *self._display(t))
        if self._boxes_visible and self._boxes:
            paint_boxes(painter, self._boxes, t, self._highlighted, self._colours)
            bounds = self.image_rect().intersected(self.rect())
            paint_labels(painter, self._boxes, t, bounds, self._highlighted, self._colours)
        painter.end()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        if self._zoom is None:
            self.zoom_changed.emit(self.transform().scale)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt API)
        steps = event.angleDelta().y() / 120
        if steps:
            self.set_zoom(self.zoom() * ZOOM_STEP**steps, event.position())
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag_from = event.position().toPoint()
            t = self.transform()
            self._drag_center = t.to_image(QPointF(self.width() / 2, self.height() / 2))
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        if self._drag_from is not None:
            delta = event.position().toPoint() - self._drag_from
            scale = self.zoom()
            self._zoom = scale
            self._center = QPointF(
                self._drag_center.x() - delta.x() / scale, self._drag_center.y() - delta.y() / scale
            )
            self.update()
        else:
            hovered = self.box_at(event.position())
            if hovered != self._highlighted:
                self.set_highlighted(hovered)
                self.box_hovered.emit(-1 if hovered is None else hovered)
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag_from = None
            self.unsetCursor()
        super().mouseReleaseEvent(event)

    def leaveEvent(self, event: object) -> None:  # noqa: N802 (Qt API)
        if self._highlighted is not None and self._drag_from is None:
            self.set_highlighted(None)
            self.box_hovered.emit(-1)
        super().leaveEvent(event)  # type: ignore[arg-type]

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_in()
        elif key == Qt.Key.Key_Minus:
            self.zoom_out()
        elif key == Qt.Key.Key_0 or key == Qt.Key.Key_F:
            self.fit()
        elif key == Qt.Key.Key_1:
            self.actual_size()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    # -- internals ---------------------------------------------------------------------------

    def _display(self, t: ViewTransform) -> tuple[QImage | QPixmap, ViewTransform]:
        """What to paint and how: a cached smooth copy when shrunk, else the image itself."""
        w, h = round(self._image.width() * t.scale), round(self._image.height() * t.scale)
        if t.scale >= 1.0 or max(w, h) > _SCALED_CACHE_LIMIT:
            return self._image, t
        if self._scaled is None or self._scaled[0] != t.scale:
            scaled = self._image.scaled(
                max(1, w),
                max(1, h),
                Qt.AspectRatioMode.IgnoreAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
            self._scaled = (t.scale, QPixmap.fromImage(scaled))
        # The copy is already scaled: paint it 1:1 at the image's offset.
        return self._scaled[1], ViewTransform(1.0, t.dx, t.dy)
