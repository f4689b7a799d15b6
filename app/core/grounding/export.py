"""Boxes as plain JSON and as a COCO detection document, for export (no Qt, no files)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.core.messages import Box

#: The `format` marker of `boxes_to_json` documents.
FORMAT = "scout-desk-boxes"


def _checked(
    boxes: Sequence[Box], image_sizes: Sequence[tuple[int, int]], image_names: Sequence[str]
) -> None:
    if len(image_names) != len(image_sizes):
        raise ValueError(
            f"{len(image_names)} image name(s) were given for {len(image_sizes)} image(s)."
        )
    for box in boxes:
        if not 0 <= box.image < len(image_sizes):
            raise ValueError(f"The box {box.label!r} belongs to image {box.image + 1}, "
                             f"but only {len(image_sizes)} image(s) were given.")  # fmt: skip


def boxes_to_json(
    boxes: Sequence[Box], image_sizes: Sequence[tuple[int, int]], image_names: Sequence[str]
) -> dict[str, Any]:
    """Describe boxes and their images as one JSON-ready object.

    Each box keeps the contract's fields (integer pixels of the upright image) and adds its
    coordinates normalised to 0-1, so the file is useful whatever size the image is shown at.
    `parse_boxes` reads this document back to the same boxes.

    Args:
        boxes: the boxes.
        image_sizes: (width, height) of each image, indexed by `Box.image`.
        image_names: the file name of each image.

    Returns:
        {"format", "version", "units": "pixels", "images": [...], "boxes": [...]}.

    Raises:
        ValueError: a box names an image that is not given, or names and sizes differ in count.
    """
    _checked(boxes, image_sizes, image_names)
    images = [
        {"index": i, "name": name, "width": w, "height": h}
        for i, ((w, h), name) in enumerate(zip(image_sizes, image_names, strict=True))
    ]
    out_boxes = []
    for box in boxes:
        width, height = image_sizes[box.image]
        out_boxes.append(
            {
                "label": box.label,
                "image": box.image,
                "x1": box.x1,
                "y1": box.y1,
                "x2": box.x2,
                "y2": box.y2,
                "normalized": [
                    round(box.x1 / width, 6),
                    round(box.y1 / height, 6),
                    round(box.x2 / width, 6),
                    round(box.y2 / height, 6),
                ],
            }
        )
    return {"format": FORMAT, "version": 1, "units": "pixels", "images": images,
            "boxes": out_boxes}  # fmt: skip


def boxes_to_coco(
    boxes: Sequence[Box], image_sizes: Sequence[tuple[int, int]], image_names: Sequence[str]
) -> dict[str, Any]:
    """Describe boxes as a COCO object-detection document.

    Images and annotations are numbered from 1; `bbox` is [x, y, width, height] in pixels;
    one category per distinct label, in order of first appearance; `iscrowd` is 0.

    Args:
        boxes: the boxes.
        image_sizes: (width, height) of each image, indexed by `Box.image`.
        image_names: the file name of each image.

    Returns:
        {"info", "images", "annotations", "categories"}.

    Raises:
        ValueError: a box names an image that is not given, or names and sizes differ in count.
    """
    _checked(boxes, image_sizes, image_names)
    categories: dict[str, int] = {}
    annotations = []
    for number, box in enumerate(boxes, start=1):
        category = categories.setdefault(box.label, len(categories) + 1)
        width, height = box.x2 - box.x1, box.y2 - box.y1
        annotations.append(
            {
                "id": number,
                "image_id": box.image + 1,
                "category_id": category,
                "bbox": [box.x1, box.y1, width, height],
                "area": width * height,
                "iscrowd": 0,
                "segmentation": [],
            }
        )
    return {
        "info": {"description": "Regions located by Llama 4 Scout in Scout Desk"},
        "images": [
            {"id": i + 1, "file_name": name, "width": w, "height": h}
            for i, ((w, h), name) in enumerate(zip(image_sizes, image_names, strict=True))
        ],
        "annotations": annotations,
        "categories": [
            {"id": cid, "name": name, "supercategory": "object"} for name, cid in categories.items()
        ],
    }
