"""The located regions of an answer in the Markdown and HTML exports (all text escaped)."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

from app.core.grounding import answer_images
from app.core.grounding.colours import Colours, colour_of, label_colours
from app.core.messages import Attachment, Box, Message

#: Returns a safe data URI for an image attachment, or None when it cannot be embedded.
ImageUri = Callable[[Attachment], str | None]

BOXES_CSS = """
.boxes { font-size: .85rem; color: #3a3a3c; margin: .3rem 0; padding-left: 1.2rem; }
.swatch { display: inline-block; width: .7em; height: .7em; border-radius: 2px;
          margin-right: .3em; vertical-align: baseline; }
.annotated { position: relative; display: inline-block; max-width: 100%; }
.annotated img { display: block; }
.annotated svg { position: absolute; left: 0; top: 0; width: 100%; height: 100%; }
"""


def _where(box: Box, image_count: int) -> str:
    corners = f"({box.x1}, {box.y1})–({box.x2}, {box.y2}) px"
    return f"image {box.image + 1}, {corners}" if image_count > 1 else corners


def _single_line(text: str) -> str:
    return " ".join(text.split())


def boxes_markdown(messages: Sequence[Message], index: int) -> list[str]:
    """Markdown lines listing an answer's boxes ([] when it has none).

    Args:
        messages: the chat's visible messages.
        index: the answer's position among them.

    Returns:
        A heading line and one list item per box, then a blank line.
    """
    message = messages[index]
    if not message.boxes:
        return []
    count = len(answer_images(messages, index))
    lines = ["Located regions:", ""]
    lines += [f"- {_single_line(b.label)}: {_where(b, count)}" for b in message.boxes]
    return [*lines, ""]


def _overlay(image: Attachment, uri: str, boxes: Sequence[Box], colours: Colours) -> str:
    """The image with its boxes drawn over it in image coordinates, as inline SVG.

    `colours` is the message's label map, the one the viewer paints with on screen.
    """
    esc = html.escape
    width, height = image.width or 1, image.height or 1
    stroke = max(2, round(max(width, height) / 300))
    shapes = []
    for box in boxes:
        colour = colour_of(box.label, colours)
        shapes.append(
            f'<rect x="{box.x1}" y="{box.y1}" width="{box.x2 - box.x1}" '
            f'height="{box.y2 - box.y1}" fill="none" stroke="{colour}" '
            f'stroke-width="{stroke}"><title>{esc(box.label)}</title></rect>'
        )
    return (
        f'<figure><div class="annotated"><img src="{esc(uri)}" alt="{esc(image.name)}">'
        f'<svg viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'aria-hidden="true">{"".join(shapes)}</svg></div>'
        f'<figcaption class="meta">{esc(image.name)}, with the located regions</figcaption>'
        "</figure>"
    )


def boxes_html(messages: Sequence[Message], index: int, image_uri: ImageUri) -> list[str]:
    """HTML for an answer's boxes: each image they are on, overlaid, and a list of them.

    Args:
        messages: the chat's visible messages.
        index: the answer's position among them.
        image_uri: a data URI for an image (None when it cannot be embedded).

    Returns:
        HTML fragments ([] when the answer has no boxes). Every label is escaped.
    """
    message = messages[index]
    if not message.boxes:
        return []
    esc = html.escape
    images = answer_images(messages, index)
    colours = label_colours(b.label for b in message.boxes)  # as on screen, per message
    parts = []
    for number, image in enumerate(images):
        on_image = [b for b in message.boxes if b.image == number]
        uri = image_uri(image) if on_image else None
        if uri:
            parts.append(_overlay(image, uri, on_image, colours))
    items = "".join(
        f'<li><span class="swatch" style="background:{colour_of(b.label, colours)}"></span>'
        f"{esc(_single_line(b.label))}: {esc(_where(b, len(images)))}</li>"
        for b in message.boxes
    )
    parts.append(f'<ul class="boxes">{items}</ul>')
    return parts
