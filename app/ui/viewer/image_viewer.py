"""The image viewer: a message's images with their boxes, zoom controls, box list and export."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QImage, QImageReader, QKeySequence, QResizeEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.messages import Box
from app.ui.viewer.box_list import BoxList
from app.ui.viewer.image_canvas import ImageCanvas
from app.ui.viewer.overlay_export import (
    JSON_FILTER,
    PNG_FILTER,
    ChoosePath,
    ExportError,
    ask_save_path,
    save_annotated_png,
    save_boxes_coco,
    save_boxes_json,
)
from app.ui.viewer.overlay_render import Colours, label_colours

_SIDE_BY_SIDE_PX = 720  # narrower than this, the box list goes under the image
_SIDE_LIST_PX = 210
_SIDE_LIST_HEIGHT_PX = 150


@dataclass(frozen=True)
class ViewerImage:
    """One image of a message, as the viewer needs it.

    Attributes:
        name: the file name the user attached.
        path: the stored upright blob.
    """

    name: str
    path: Path


def load_upright(path: Path) -> tuple[QImage, str]:
    """Read a stored image exactly as stored (blobs are already upright: no EXIF turn again).

    Args:
        path: the blob's file.

    Returns:
        (image, "") or (a null image, a sentence saying why it cannot be shown).
    """
    reader = QImageReader(str(path))
    reader.setAutoTransform(False)
    image = reader.read()
    if image.isNull():
        return QImage(), f"The image cannot be shown: {reader.errorString()}."
    return image, ""


class ImageViewer(QWidget):
    """Shows one message's images with their boxes; hover, T, copy and export work here.

    Attributes:
        choose_path: asks where to save an export; tests replace it to answer without a dialog.
    """

    #: int: the message's box index hovered in the canvas or the list (-1: none).
    box_hovered = Signal(int)
    #: str: a sentence for the status bar (an export done or failed).
    message_posted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageViewer")
        self.choose_path: ChoosePath = ask_save_path
        self._images: list[ViewerImage] = []
        self._sizes: list[tuple[int, int]] = []
        self._boxes: list[Box] = []
        self._colours: Colours = {}
        self._message_id: str | None = None
        self._current = -1
        self._laid_out = False

        self.canvas = ImageCanvas(self)
        self.box_list = BoxList(self)
        self.switcher = QComboBox(self)
        self.switcher.setObjectName("imageSwitcher")
        self.switcher.setAccessibleName("Image of the message")
        self.switcher.currentIndexChanged.connect(self._on_switcher_current_index_changed)
        self.zoom_label = QLabel(self)
        self.zoom_label.setObjectName("zoomLabel")
        self.zoom_label.setMinimumWidth(48)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.count_label = QLabel(self)
        self.count_label.setObjectName("boxCount")
        self.notice = QLabel(self)
        self.notice.setObjectName("viewerNotice")
        self.notice.setTextFormat(Qt.TextFormat.PlainText)
        self.notice.setWordWrap(True)
        self.notice.hide()

        self.toggle_action = self._action("Boxes", "T", self.canvas.set_boxes_visible)
        self.toggle_action.setCheckable(True)
        self.toggle_action.setChecked(True)
        self.toggle_action.setToolTip("Show or hide the boxes (T)")
        self.canvas.boxes_visibility_changed.connect(self.toggle_action.setChecked)
        self.export_png_action = QAction("Annotated image (PNG)…", self)
        self.export_png_action.triggered.connect(lambda: self.export_png())
        self.export_json_action = QAction("Boxes as JSON…", self)
        self.export_json_action.triggered.connect(lambda: self.export_json())
        self.export_coco_action = QAction("Boxes as COCO…", self)
        self.export_coco_action.triggered.connect(lambda: self.export_coco())

        self.canvas.zoom_changed.connect(self._on_canvas_zoom_changed)
        self.canvas.box_hovered.connect(self._on_canvas_box_hovered)
        self.box_list.box_hovered.connect(self._on_list_box_hovered)
        self._build_layout()
        self._refresh_controls()

    # -- content -----------------------------------------------------------------------------

    @property
    def message_id(self) -> str | None:
        """The message whose boxes are shown, or None."""
        return self._message_id

    @property
    def boxes(self) -> list[Box]:
        """Every box of the message shown (all images)."""
        return list(self._boxes)

    @property
    def colours(self) -> Colours:
        """The colour of each label of the message shown (label key → colour)."""
        return dict(self._colours)

    @property
    def current_index(self) -> int:
        """The index of the image shown among the message's images (-1: none)."""
        return self._current

    def show_images(
        self,
        images: Sequence[ViewerImage],
        boxes: Sequence[Box] = (),
        *,
        current: int = 0,
        message_id: str | None = None,
    ) -> None:
        """Show a message's images; each box is drawn on the image its `image` index names.

        Args:
            images: the message's images, in order.
            boxes: every box of the message.
            current: which image to show first.
            message_id: the message the boxes belong to (for hover linking).
        """
        self._images = list(images)
        self._boxes = list(boxes)
        self._colours = label_colours(b.label for b in self._boxes)
        self._message_id = message_id
        self._sizes = []
        for image in self._images:
            size = QImageReader(str(image.path)).size()
            self._sizes.append((size.width(), size.height()) if size.isValid() else (0, 0))
        self.switcher.blockSignals(True)
        self.switcher.clear()
        for i, image in enumerate(self._images):
            count = sum(1 for b in self._boxes if b.image == i)
            self.switcher.addItem(f"{i + 1}. {image.name} — {_boxes_word(count)}")
        self.switcher.blockSignals(False)
        self._current = -1
        self.set_current_image(min(max(0, current), len(self._images) - 1))

    def clear(self) -> None:
        """Show nothing."""
        self.show_images([])

    def set_current_image(self, index: int) -> None:
        """Switch to the message's image `index` and its boxes."""
        if not 0 <= index < len(self._images):
            self._current = -1
            self.canvas.set_image(QImage())
            self.box_list.box_model.set_boxes([])
            self._refresh_controls()
            return
        self._current = index
        image, problem = load_upright(self._images[index].path)
        items = [(i, b) for i, b in enumerate(self._boxes) if b.image == index]
        self.canvas.set_image(image, items, self._colours)
        self.box_list.box_model.set_boxes(items, self._colours)
        self._show_notice(problem)
        if self.switcher.currentIndex() != index:
            self.switcher.blockSignals(True)
            self.switcher.setCurrentIndex(index)
            self.switcher.blockSignals(False)
        self._refresh_controls()

    def highlight_box(self, index: int | None) -> None:
        """Emphasise a box of the message (from hovering its words); switches image if needed.

        Args:
            index: the box's index in the message, or None/-1 for none.
        """
        if index is None or not 0 <= index < len(self._boxes):
            self.canvas.set_highlighted(None)
            self.box_list.clearSelection()
            return
        box = self._boxes[index]
        if box.image != self._current:
            self.set_current_image(box.image)
        self.canvas.set_highlighted(index)
        self.box_list.select_box(index)

    # -- export ------------------------------------------------------------------------------

    def export_png(self, dest: Path | None = None) -> Path | None:
        """Save the image shown with its boxes drawn, at native size.

        Args:
            dest: where to write; None asks with `choose_path`.

        Returns:
            The file written, or None (cancelled or failed; a sentence says why).
        """
        if self._current < 0:
            return None
        name = Path(self._images[self._current].name).stem or "image"
        dest = dest or self.choose_path(
            self, "Export annotated image", f"{name}-boxes.png", PNG_FILTER
        )
        if dest is None:
            return None
        boxes = [b for b in self._boxes if b.image == self._current]
        return self._export(
            dest, lambda: save_annotated_png(self.canvas.image(), boxes, dest, self._colours)
        )

    def export_json(self, dest: Path | None = None) -> Path | None:
        """Save every box of the message as JSON (asks where when `dest` is None)."""
        dest = dest or self.choose_path(self, "Export boxes as JSON", "boxes.json", JSON_FILTER)
        if dest is None:
            return None
        names = [i.name for i in self._images]
        return self._export(dest, lambda: save_boxes_json(dest, self._boxes, self._sizes, names))

    def export_coco(self, dest: Path | None = None) -> Path | None:
        """Save every box of the message in COCO form (asks where when `dest` is None)."""
        dest = dest or self.choose_path(
            self, "Export boxes as COCO", "boxes-coco.json", JSON_FILTER
        )
        if dest is None:
            return None
        names = [i.name for i in self._images]
        return self._export(dest, lambda: save_boxes_coco(dest, self._boxes, self._sizes, names))

    # -- internals ---------------------------------------------------------------------------

    def _export(self, dest: Path, write: Callable[[], None]) -> Path | None:
        try:
            write()
        except ExportError as exc:
            self._show_notice(exc.message)
            self.message_posted.emit(exc.message)
            return None
        self.message_posted.emit(f"Saved {dest.name}.")
        return dest

    def _action(self, text: str, keys: str, slot: object) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(keys))
        # Only while the viewer has focus: T typed in the composer must stay a letter.
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_layout(self) -> None:
        def tool(text: str, tip: str, slot: object) -> QToolButton:
            button = QToolButton(self)
            button.setText(text)
            button.setToolTip(tip)
            button.setAccessibleName(tip)
            button.setAutoRaise(True)
            button.clicked.connect(slot)
            return button

        bar = QHBoxLayout()
        bar.setContentsMargins(8, 6, 8, 6)
        bar.setSpacing(2)
        bar.addWidget(self.switcher, 1)
        bar.addWidget(tool("−", "Zoom out (-)", self.canvas.zoom_out))
        bar.addWidget(self.zoom_label)
        bar.addWidget(tool("+", "Zoom in (+)", self.canvas.zoom_in))
        bar.addWidget(tool("Fit", "Fit the image (0)", self.canvas.fit))
        bar.addWidget(tool("100 %", "Actual size (1)", self.canvas.actual_size))
        bar.addStretch(0)
        toggle = QToolButton(self)
        toggle.setDefaultAction(self.toggle_action)
        toggle.setObjectName("boxesToggle")
        toggle.setAutoRaise(True)
        bar.addWidget(toggle)
        export = QToolButton(self)
        export.setObjectName("exportButton")
        export.setText("Export")
        export.setAccessibleName("Export")
        export.setAutoRaise(True)
        export.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(export)
        for action in (self.export_png_action, self.export_json_action, self.export_coco_action):
            menu.addAction(action)
        export.setMenu(menu)
        bar.addWidget(export)

        side = QWidget(self)
        side.setObjectName("boxSide")
        column = QVBoxLayout(side)
        column.setContentsMargins(6, 6, 6, 6)
        column.setSpacing(4)
        column.addWidget(self.count_label)
        column.addWidget(self.box_list, 1)
        self._splitter = splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.canvas)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 0)
        splitter.setChildrenCollapsible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self.notice)
        layout.addWidget(splitter, 1)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt API)
        # Beside the image when there is room (a wide window), under it in a narrow dock.
        super().resizeEvent(event)
        wide = event.size().width() >= _SIDE_BY_SIDE_PX
        orientation = Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical
        if orientation != self._splitter.orientation() or not self._laid_out:
            self._laid_out = True
            self._splitter.setOrientation(orientation)
            total = event.size().width() if wide else event.size().height()
            side = _SIDE_LIST_PX if wide else _SIDE_LIST_HEIGHT_PX
            self._splitter.setSizes([max(1, total - side), side])

    def _refresh_controls(self) -> None:
        has_image = self._current >= 0
        self.switcher.setVisible(len(self._images) > 1)
        count = self.box_list.box_model.rowCount()
        self.count_label.setText(_boxes_word(count).capitalize() if has_image else "No image")
        for action in (self.export_png_action, self.export_json_action, self.export_coco_action):
            action.setEnabled(has_image)
        self._on_canvas_zoom_changed(self.canvas.zoom() if has_image else 0.0)

    def _show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def _on_switcher_current_index_changed(self, index: int) -> None:
        if index >= 0 and index != self._current:
            self.set_current_image(index)

    def _on_canvas_zoom_changed(self, zoom: float) -> None:
        self.zoom_label.setText(f"{zoom * 100:.0f} %" if zoom > 0 else "")

    def _on_canvas_box_hovered(self, index: int) -> None:
        self.box_list.select_box(None if index < 0 else index)
        self.box_hovered.emit(index)

    def _on_list_box_hovered(self, index: int) -> None:
        self.canvas.set_highlighted(None if index < 0 else index)
        self.box_hovered.emit(index)


def _boxes_word(count: int) -> str:
    return "no boxes" if count == 0 else "1 box" if count == 1 else f"{count} boxes"
