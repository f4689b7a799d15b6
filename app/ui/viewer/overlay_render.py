"""Pure render functions for the grounding overlay: image, box outlines, label chips, in z-order.

The image viewer and the annotated-PNG export both paint with these functions, so a box looks
the same pixel for pixel on screen at 100 % and in the exported file. Everything is computed from
one `ViewTransform` (image pixels → view pixels) made by `compute_transform`, the only place that
decides where the image sits in the view.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPixmap, QTransform

from app.core.grounding import colours as _core
from app.core.grounding.colours import PALETTE as PALETTE  # re-exported; core owns the palette
from app.core.grounding.colours import label_key
from app.core.messages import Box

OUTLINE_PX = 2  # outline width in view pixels, drawn inside the box so its edge pixel is coloured
HIGHLIGHT_OUTLINE_PX = 3
LABEL_FONT_PX = 12
_LABEL_PAD_X = 5
_LABEL_PAD_Y = 2
_LABEL_MAX_PX = 260  # longer labels are elided; the side list has them whole
_FILL_ALPHA = 28
_HIGHLIGHT_FILL_ALPHA = 72
_HALO = QColor(0, 0, 0, 110)  # a thin dark line outside the outline, for light backgrounds


@dataclass(frozen=True)
class ViewTransform:
    """Maps image pixels to view pixels: view = offset + image × scale.

    Attributes:
        scale: view pixels per image pixel.
        dx: where the image's left edge lands in the view (whole pixels).
        dy: where the image's top edge lands in the view (whole pixels).
    """

    scale: float = 1.0
    dx: int = 0
    dy: int = 0

    def to_view(self, x: float, y: float) -> QPointF:
        """Return the view point of an image point."""
        return QPointF(self.dx + x * self.scale, self.dy + y * self.scale)

    def to_image(self, point: QPointF) -> QPointF:
        """Return the image point under a view point."""
        return QPointF((point.x() - self.dx) / self.scale, (point.y() - self.dy) / self.scale)

    def view_x(self, x: float) -> int:
        """The view column where image column boundary `x` lands (rounded)."""
        return round(self.dx + x * self.scale)

    def view_y(self, y: float) -> int:
        """The view row where image row boundary `y` lands (rounded)."""
        return round(self.dy + y * self.scale)

    def qtransform(self) -> QTransform:
        """The same mapping as a QTransform (for painting the image)."""
        return QTransform(self.scale, 0, 0, self.scale, self.dx, self.dy)


IDENTITY = ViewTransform()


def compute_transform(
    image_size: QSize, view_size: QSize, zoom: float | None, center: QPointF | None = None
) -> ViewTransform:
    """Place an image in a view: the one function that owns the view ↔ image mapping.

    Args:
        image_size: the upright image's pixels.
        view_size: the view's pixels.
        zoom: view pixels per image pixel; None fits the whole image in the view.
        center: the image point to show at the view's centre (None: the image's centre). Along
            an axis where the image is smaller than the view it is centred instead, and
            elsewhere the point is clamped so no empty band shows beside the image.

    Returns:
        The transform, with whole-pixel offsets so edges land on pixel boundaries.
    """
    iw, ih = max(1, image_size.width()), max(1, image_size.height())
    vw, vh = max(1, view_size.width()), max(1, view_size.height())
    scale = min(vw / iw, vh / ih) if zoom is None else zoom
    cx, cy = (iw / 2, ih / 2) if center is None else (center.x(), center.y())

    def offset(view: int, image: int, c: float) -> int:
        extent = image * scale
        if extent <= view:
            return round((view - extent) / 2)
        # Keep the image covering the view: its edges may not come inside the view's edges.
        wanted = view / 2 - c * scale
        return round(min(0.0, max(view - extent, wanted)))

    return ViewTransform(scale, offset(vw, iw, cx), offset(vh, ih, cy))


#: Label key → colour, for the labels of one message (see `label_colours`).
Colours = Mapping[str, QColor]


def label_colour(label: str) -> QColor:
    """The colour a label hashes to (`app.core.grounding.colours.label_colour`), as a QColor."""
    return QColor(_core.label_colour(label))


def label_colours(labels: Iterable[str]) -> dict[str, QColor]:
    """A message's label colours (`app.core.grounding.colours.label_colours`), as QColors.

    Args:
        labels: every box label of the message, in order (repeats are fine).

    Returns:
        Label key → colour; the same labels always give the same map.
    """
    return {key: QColor(value) for key, value in _core.label_colours(labels).items()}


def colour_of(label: str, colours: Colours | None = None) -> QColor:
    """A label's colour from a message's map, or its hashed colour when the map lacks it."""
    found = colours.get(label_key(label)) if colours is not None else None
    return QColor(found) if found is not None else label_colour(label)


def text_colour_on(background: QColor) -> QColor:
    """Black or white, whichever reads better on `background` (WCAG relative luminance)."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    luminance = (
        0.2126 * channel(background.red())
        + 0.7152 * channel(background.green())
        + 0.0722 * channel(background.blue())
    )
    # Contrast with black is (L + 0.05) / 0.05, with white 1.05 / (L + 0.05); pick the larger.
    return QColor("#000000") if luminance > math.sqrt(1.05 * 0.05) - 0.05 else QColor("#ffffff")


def display_label(box: Box, index: int) -> str:
    """The text a box's chip shows: its label, or "box N" when the model gave none."""
    label = " ".join(box.label.split())
    return label or f"box {index + 1}"


def box_view_rect(box: Box, transform: ViewTransform) -> QRect:
    """The view pixels a box covers: columns [left, right] and rows [top, bottom], inclusive.

    Image pixel x covers [x, x + 1), so a box spans image columns x1 … x2 − 1; at 100 % its
    outline lands exactly on those pixels.
    """
    left, top = transform.view_x(box.x1), transform.view_y(box.y1)
    right = max(left + 1, transform.view_x(box.x2))
    bottom = max(top + 1, transform.view_y(box.y2))
    return QRect(left, top, right - left, bottom - top)


def paint_image(painter: QPainter, image: QImage | QPixmap, transform: ViewTransform) -> None:
    """Paint the image where the transform puts it (smooth when shrunk, crisp when enlarged)."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, transform.scale < 2.0)
    painter.setTransform(transform.qtransform())
    if isinstance(image, QPixmap):
        painter.drawPixmap(0, 0, image)
    else:
        painter.drawImage(0, 0, image)
    painter.restore()


def paint_boxes(
    painter: QPainter,
    boxes: Sequence[tuple[int, Box]],
    transform: ViewTransform,
    highlighted: int | None = None,
    colours: Colours | None = None,
) -> None:
    """Paint box outlines (a translucent fill, a dark halo, then the coloured outline).

    Args:
        painter: paints in view pixels (no transform set).
        boxes: (index in the message, box) pairs; the index is what `highlighted` names.
        transform: image → view.
        highlighted: the index of the box to emphasise (drawn last, thicker, fuller).
        colours: the message's label colours (`label_colours`); None: each label's own.
    """
    painter.save()
    painter.resetTransform()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    for index, box in _in_z_order(boxes, highlighted):
        hot = index == highlighted
        rect = box_view_rect(box, transform)
        colour = colour_of(box.label, colours)
        fill = QColor(colour)
        fill.setAlpha(_HIGHLIGHT_FILL_ALPHA if hot else _FILL_ALPHA)
        painter.fillRect(rect, fill)
        painter.setPen(_HALO)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(rect.adjusted(-1, -1, 0, 0))  # 1 px just outside [left, right]
        _stroke_inside(painter, rect, HIGHLIGHT_OUTLINE_PX if hot else OUTLINE_PX, colour)
    painter.restore()


def paint_labels(
    painter: QPainter,
    boxes: Sequence[tuple[int, Box]],
    transform: ViewTransform,
    bounds: QRect,
    highlighted: int | None = None,
    colours: Colours | None = None,
) -> None:
    """Paint each box's label as a chip in its colour with black or white plain text.

    Args:
        painter: paints in view pixels.
        boxes: (index in the message, box) pairs.
        transform: image → view.
        bounds: chips are kept inside this rectangle (the visible image).
        highlighted: the index of the box whose chip goes on top.
        colours: the message's label colours (`label_colours`); None: each label's own.
    """
    font = label_font()
    metrics = QFontMetrics(font)
    painter.save()
    painter.resetTransform()
    painter.setFont(font)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
    for index, box in _in_z_order(boxes, highlighted):
        text = metrics.elidedText(
            display_label(box, index), Qt.TextElideMode.ElideRight, _LABEL_MAX_PX
        )
        chip = label_chip_rect(
            box_view_rect(box, transform), metrics.horizontalAdvance(text), bounds
        )
        colour = colour_of(box.label, colours)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawRoundedRect(QRectF(chip), 3, 3)
        painter.setPen(text_colour_on(colour))
        # drawText with a str is plain text: model words can never become markup here.
        painter.drawText(chip, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextSingleLine, text)
    painter.restore()


def label_font() -> QFont:
    """The chip font: a fixed pixel size, so labels stay readable at any zoom."""
    font = QFont()
    font.setPixelSize(LABEL_FONT_PX)
    font.setWeight(QFont.Weight.DemiBold)
    return font


def label_chip_rect(box: QRect, text_width: int, bounds: QRect) -> QRect:
    """Where a label chip goes: above the box's top-left corner, or inside it when no room.

    Args:
        box: the box's view rectangle.
        text_width: the label's advance in pixels.
        bounds: the chip stays inside this rectangle when it can.

    Returns:
        The chip's rectangle.
    """
    height = QFontMetrics(label_font()).height() + 2 * _LABEL_PAD_Y
    width = text_width + 2 * _LABEL_PAD_X
    top = box.top() - height
    if top < bounds.top():
        top = box.top()  # no room above: sit inside the box's top edge
    left = min(box.left(), bounds.right() + 1 - width)
    left = max(left, bounds.left())
    return QRect(left, top, width, height)


def render_annotated(
    image: QImage,
    boxes: Sequence[Box],
    *,
    show_labels: bool = True,
    colours: Colours | None = None,
) -> QImage:
    """Draw boxes onto a copy of the image at its native size (the annotated-PNG export).

    Args:
        image: the upright image.
        boxes: the boxes of this image (their `image` index is not checked here).
        show_labels: whether to paint the label chips.
        colours: the message's label colours (None: from these boxes' labels).

    Returns:
        A new RGB32 image, pixel for pixel what the viewer shows at 100 %.
    """
    out = image.convertToFormat(QImage.Format.Format_RGB32)
    items = list(enumerate(boxes))
    colours = colours if colours is not None else label_colours(b.label for b in boxes)
    painter = QPainter(out)
    try:
        paint_boxes(painter, items, IDENTITY, colours=colours)
        if show_labels:
            paint_labels(painter, items, IDENTITY, out.rect(), colours=colours)
    finally:
        painter.end()
    return out


def _stroke_inside(painter: QPainter, rect: QRect, width: int, colour: QColor) -> None:
    """Fill a `width`-pixel band along the inside of `rect` (a whole-pixel, unblurred outline)."""
    w = min(width, rect.width()), min(width, rect.height())
    painter.fillRect(QRect(rect.left(), rect.top(), rect.width(), w[1]), colour)
    painter.fillRect(QRect(rect.left(), rect.bottom() + 1 - w[1], rect.width(), w[1]), colour)
    painter.fillRect(QRect(rect.left(), rect.top(), w[0], rect.height()), colour)
    painter.fillRect(QRect(rect.right() + 1 - w[0], rect.top(), w[0], rect.height()), colour)


def _in_z_order(boxes: Sequence[tuple[int, Box]], highlighted: int | None) -> list[tuple[int, Box]]:
    """Large boxes first so small ones stay visible on top; the highlighted one last of all."""
    ordered = sorted(boxes, key=lambda item: -(item[1].x2 - item[1].x1) * (item[1].y2 - item[1].y1))
    return [b for b in ordered if b[0] != highlighted] + [b for b in ordered if b[0] == highlighted]
