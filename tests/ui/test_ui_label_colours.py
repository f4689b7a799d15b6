"""One palette: a label has one colour on screen, in the box list, the annotated PNG and HTML."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage

from app.core.grounding import colours as core_colours
from app.core.messages import Attachment, AttachmentKind, AttachmentStatus, Box, Message, Role
from app.store.export_boxes import boxes_html
from app.ui.viewer import overlay_render
from app.ui.viewer.box_list_model import BOX_INDEX_ROLE
from app.ui.viewer.image_viewer import ImageViewer, ViewerImage
from app.ui.viewer.overlay_render import render_annotated

# Pairs that are one label: case, spacing and Unicode case folding ("ß" folds to "ss").
LABELS = ("Dog", "STRASSE", "cat", "dog", "straße", "  CAT ")
SAME = ((0, 3), (1, 4), (2, 5))
SIZE = (420, 100)
BOXES = tuple(Box(label, 0, 10 + 68 * i, 30, 60 + 68 * i, 90) for i, label in enumerate(LABELS))


def _messages() -> list[Message]:
    image = Attachment(
        name="pets.png",
        kind=AttachmentKind.IMAGE,
        status=AttachmentStatus.USED,
        sha256="0" * 64,
        mime="image/png",
        width=SIZE[0],
        height=SIZE[1],
    )
    return [
        Message("q", "s", Role.USER, "where?", 0.0, attachments=(image,)),
        Message("a", "s", Role.ASSISTANT, "here", 1.0, boxes=BOXES),
    ]


def _annotated_edges() -> list[str]:
    """The colour of each box's right outline edge in the annotated PNG (the overlay's paint)."""
    image = QImage(*SIZE, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    out = render_annotated(image, BOXES)
    return [out.pixelColor(b.x2 - 1, (b.y1 + b.y2) // 2).name() for b in BOXES]


def _box_list_colours(qtbot, tmp_path: Path) -> list[str]:
    """The DecorationRole colour of each box in the real viewer's side list."""
    path = tmp_path / "pets.png"
    Image.new("RGB", SIZE, (128, 128, 128)).save(path)
    viewer = ImageViewer()
    qtbot.addWidget(viewer)
    viewer.show_images([ViewerImage("pets.png", path)], BOXES, message_id="a")
    model = viewer.box_list.box_model
    found: dict[int, str] = {}
    for row in range(model.rowCount()):
        index = model.index(row)
        colour = index.data(Qt.ItemDataRole.DecorationRole)
        assert isinstance(colour, QColor)
        found[index.data(BOX_INDEX_ROLE)] = colour.name()
    return [found[i] for i in range(len(BOXES))]


def _html_colours() -> tuple[list[str], list[str]]:
    """The SVG stroke of each box over the image, and each list item's swatch, in the HTML."""
    markup = "".join(boxes_html(_messages(), 1, lambda _image: "data:image/png;base64,AA=="))
    strokes = re.findall(r'<rect [^>]*stroke="(#[0-9a-f]{6})"', markup)
    swatches = re.findall(r'class="swatch" style="background:(#[0-9a-f]{6})"', markup)
    return strokes, swatches


def test_a_label_has_one_colour_in_the_overlay_the_box_list_and_the_html(qtbot, tmp_path):
    expected_map = core_colours.label_colours(LABELS)
    expected = [core_colours.colour_of(label, expected_map) for label in LABELS]
    strokes, swatches = _html_colours()

    assert _annotated_edges() == expected
    assert _box_list_colours(qtbot, tmp_path) == expected
    assert strokes == expected
    assert swatches == expected
    for a, b in SAME:
        assert expected[a] == expected[b], (LABELS[a], LABELS[b])
    # Three different things in one picture get three different colours.
    assert len({expected[a] for a, _b in SAME}) == 3


def test_the_core_module_is_the_one_palette():
    assert overlay_render.PALETTE is core_colours.PALETTE
    assert core_colours.label_key("STRASSE") == core_colours.label_key(" straße ") == "strasse"
    for label in ("Dog", "dog", "STRASSE", "straße", "Ω", "ω"):
        assert overlay_render.label_colour(label).name() == core_colours.label_colour(label)
        assert overlay_render.colour_of(label).name() == core_colours.colour_of(label)
    for value in core_colours.PALETTE:
        assert QColor(value).name() == value  # "#rrggbb", lower case, as HTML and Qt both read it
