"""Export located boxes: the annotated image as PNG, the boxes as JSON or COCO, atomically."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from enum import StrEnum
from functools import partial
from pathlib import Path

from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog, QWidget

from app.core.errors import ExpectedError
from app.core.grounding import boxes_to_coco, boxes_to_json
from app.core.messages import Box
from app.ui.viewer.overlay_render import Colours, render_annotated

#: Asks where to save: (parent, caption, suggested file name, name filter) → a path or None.
ChoosePath = Callable[[QWidget | None, str, str, str], Path | None]

PNG_FILTER = "PNG image (*.png)"
JSON_FILTER = "JSON (*.json)"


class ExportError(ExpectedError):
    """An export failed; `message` is a sentence naming the file and the problem."""


def ask_save_path(
    parent: QWidget | None, caption: str, suggested: str, name_filter: str
) -> Path | None:
    """The default `ChoosePath`: the platform's save dialog.

    Args:
        parent: the dialog's parent.
        caption: the dialog's title.
        suggested: the file name offered.
        name_filter: e.g. "PNG image (*.png)".

    Returns:
        The chosen path, or None when the user cancelled.
    """
    chosen, _filter = QFileDialog.getSaveFileName(parent, caption, suggested, name_filter)
    return Path(chosen) if chosen else None


def save_annotated_png(
    image: QImage, boxes: Sequence[Box], dest: Path, colours: Colours | None = None
) -> None:
    """Write the image with its boxes drawn, at its native size (the viewer's pixels at 100 %).

    Args:
        image: the upright image.
        boxes: the boxes on this image.
        dest: the PNG file to write (replaced atomically).
        colours: the message's label colours, as the viewer uses them.

    Raises:
        ExportError: the image is empty or the file cannot be written.
    """
    if image.isNull():
        raise ExportError(f"{dest.name} was not written: there is no image to annotate.")
    annotated = render_annotated(image, boxes, colours=colours)
    _write_atomically(dest, lambda tmp: _save_png(annotated, tmp, dest))


class BoxFormat(StrEnum):
    """How boxes are written: plain JSON (`boxes_to_json`) or a COCO detection file."""

    JSON = "json"
    COCO = "coco"


def save_boxes(
    dest: Path,
    boxes: Sequence[Box],
    image_sizes: Sequence[tuple[int, int]],
    image_names: Sequence[str],
    fmt: BoxFormat = BoxFormat.JSON,
) -> None:
    """Write the boxes as JSON or COCO (pixels of the upright images).

    Args:
        dest: the file to write (replaced atomically).
        boxes: every box of the message.
        image_sizes: (width, height) of each of the message's images.
        image_names: the file names of those images.
        fmt: the format (see `boxes_to_json`, `boxes_to_coco`).

    Raises:
        ExportError: the file cannot be written, or a box names an image not given.
    """
    unreadable = [
        n for n, (w, h) in zip(image_names, image_sizes, strict=False) if w <= 0 or h <= 0
    ]
    if unreadable:
        raise ExportError(f"{dest.name} was not written: {unreadable[0]} cannot be read.")
    describe = boxes_to_coco if fmt is BoxFormat.COCO else boxes_to_json
    try:
        data = describe(boxes, image_sizes, image_names)
    except ValueError as exc:  # a box names an image not given
        raise ExportError(f"{dest.name} was not written: {exc}") from exc
    _write_json(dest, data)


#: `save_boxes` in one format each (the image viewer's two menu entries).
save_boxes_json = partial(save_boxes, fmt=BoxFormat.JSON)
save_boxes_coco = partial(save_boxes, fmt=BoxFormat.COCO)


def _write_json(dest: Path, data: object) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    _write_atomically(dest, write)


def _save_png(image: QImage, tmp: Path, dest: Path) -> None:
    if not image.save(str(tmp), "PNG"):
        raise ExportError(f"{dest.name} could not be written as PNG.")


def _write_atomically(dest: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename over `dest`."""
    try:
        handle, name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    except OSError as exc:
        raise ExportError(f"{dest.name} could not be written: {exc.strerror or exc}.") from exc
    os.close(handle)
    tmp = Path(name)
    try:
        write(tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.replace(dest)
    except OSError as exc:
        raise ExportError(f"{dest.name} could not be written: {exc.strerror or exc}.") from exc
    finally:
        tmp.unlink(missing_ok=True)
