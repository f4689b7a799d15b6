"""The public parsing entry points: boxes, boxes with notes, and the words each box came from."""

from __future__ import annotations

from collections.abc import Sequence

from app.core.grounding.parse import parse_all
from app.core.messages import Box


def parse_boxes(text: str, image_size: tuple[int, int]) -> list[Box]:
    """Parse the boxes of an answer about one image (the grounding contract).

    Args:
        text: the answer, any text at all (never raises).
        image_size: (width, height) of the upright image.

    Returns:
        Boxes in integer pixels with 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, in
        reading order; malformed ones are dropped (see `parse_boxes_with_notes` for why).
    """
    return parse_boxes_with_notes(text, [image_size])[0]


def parse_boxes_with_notes(
    text: str, image_sizes: Sequence[tuple[int, int]]
) -> tuple[list[Box], list[str]]:
    """Parse the boxes of an answer about one or more images, saying what was left out.

    Accepts Llama 4's `<BBOX>x1,y1,x2,y2</BBOX>` with a bold name, JSON objects and lists
    (`{"label": .., "bbox": [..]}`, `bbox_2d`, `box`, x1/y1/x2/y2 keys, `{"ruler": [..]}`), fenced
    JSON, markdown lists (`- ruler: [..]`), bare `[x1, y1, x2, y2]` and `(x1, y1), (x2, y2)`, in
    0-1, 0-1000 or pixel coordinates. A box belongs to image 0 unless a JSON "image" key or a
    cue in the text ("Image 2", "second image") says otherwise.

    Args:
        text: the answer (never raises, whatever it holds).
        image_sizes: (width, height) of each upright image of the message, in order.

    Returns:
        (boxes, notes): the kept boxes, and one plain sentence per box left out or cap hit.
    """
    parsed, notes = parse_all(text, image_sizes)
    return [p.box for p in parsed], notes


def box_spans(
    text: str, image_sizes: Sequence[tuple[int, int]] | None = None
) -> list[tuple[int, int, int]]:
    """Where the words of each parsed box are in the text, to highlight them.

    Args:
        text: the answer.
        image_sizes: the same sizes given to `parse_boxes_with_notes`, so that box indexes
            match its result (with None, one very large image is assumed: only boxes that are
            malformed whatever the image size are skipped).

    Returns:
        (box index, start, end) for the label (when found in the text) and the coordinates of
        each box, sorted by start.
    """
    sizes = list(image_sizes) if image_sizes is not None else [(1 << 30, 1 << 30)]
    parsed, _ = parse_all(text, sizes)
    spans = [(i, a, b) for i, p in enumerate(parsed) for a, b in p.spans]
    return sorted(spans, key=lambda s: (s[1], s[2], s[0]))
