"""The box overlay at the pixel level: edges where the transform says, on the image's own pixels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QPointF, QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage

from app.core.ingest import ingest_path
from app.core.messages import AttachmentStatus, Box
from app.store.blobs import BlobStore
from app.ui.viewer.image_viewer import ImageViewer, ViewerImage
from app.ui.viewer.overlay_render import (
    OUTLINE_PX,
    colour_of,
    compute_transform,
    label_colour,
    label_colours,
    render_annotated,
    text_colour_on,
)

SHOTS = Path("/tmp/ui-shots")
GREY = (128, 128, 128)
MARK = (25, 25, 25)  # the region a box should cover is painted in the image itself
CANVAS = QSize(520, 400)


def _write_image(path: Path, size: tuple[int, int], region: tuple[int, int, int, int]) -> Path:
    image = Image.new("RGB", size, GREY)
    image.paste(MARK, region)
    image.save(path)
    return path


def _viewer(qtbot, images: list[ViewerImage], boxes: list[Box]) -> ImageViewer:
    viewer = ImageViewer()
    qtbot.addWidget(viewer)
    viewer.resize(900, 480)
    viewer.show()
    qtbot.waitExposed(viewer)
    viewer.canvas.setFixedSize(CANVAS)
    viewer.show_images(images, boxes, message_id="m1")
    return viewer


def _grab(viewer: ImageViewer) -> QImage:
    QGuiApplication.processEvents()
    return viewer.canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)


def _rgb(image: QImage, x: int, y: int) -> tuple[int, int, int]:
    c = image.pixelColor(x, y)
    return c.red(), c.green(), c.blue()


def _is(colour: QColor):
    want = (colour.red(), colour.green(), colour.blue())
    return lambda rgb: rgb == want


def _near_mark(rgb: tuple[int, int, int]) -> bool:
    # Closer to the mark colour than to grey (smooth scaling blends one pixel at each edge).
    dist = lambda a, b: sum((x - y) ** 2 for x, y in zip(a, b, strict=True))  # noqa: E731
    return dist(rgb, MARK) < dist(rgb, GREY)


def _extent(image: QImage, start: tuple[int, int], step: tuple[int, int], inside) -> int:
    """Walk from `start` by `step` while `inside` holds; return the last coordinate inside."""
    x, y = start
    while 0 <= x + step[0] < image.width() and 0 <= y + step[1] < image.height():
        if not inside(_rgb(image, x + step[0], y + step[1])):
            break
        x, y = x + step[0], y + step[1]
    return x if step[0] else y


def _outline_edges(image: QImage, box_rect: tuple[int, int, int, int], colour: QColor):
    """Measure a drawn outline: left/right on the centre row, top/bottom on the right band."""
    left, top, right, bottom = box_rect  # expected, inclusive
    cy = (top + bottom) // 2
    is_box = _is(colour)
    # From the centre, move out to the inner edge of the outline, then through it.
    x_left = _extent(image, (left + OUTLINE_PX - 1, cy), (-1, 0), is_box)
    x_right = _extent(image, (right - OUTLINE_PX + 1, cy), (1, 0), is_box)
    y_top = _extent(image, (x_right, cy), (0, -1), is_box)
    y_bottom = _extent(image, (x_right, cy), (0, 1), is_box)
    return x_left, y_top, x_right, y_bottom


CASES = [
    # (image size, box region in image pixels, zoom (None: fit))
    ((640, 480), (160, 120, 400, 330), None),
    ((640, 480), (160, 120, 400, 330), 1.0),
    ((640, 480), (250, 180, 330, 260), 2.5),
    ((300, 900), (60, 300, 240, 600), None),
    ((300, 900), (60, 300, 240, 600), 0.75),
    ((1920, 1080), (700, 300, 1300, 800), None),
    ((1920, 1080), (900, 500, 1020, 580), 1.5),
    ((37, 53), (8, 14, 30, 40), None),
    ((37, 53), (8, 14, 30, 40), 3.0),
]


@pytest.mark.parametrize(("size", "region", "zoom"), CASES)
def test_box_edges_land_within_a_pixel_of_the_transform_and_of_the_image_pixels(
    qtbot, tmp_path, size, region, zoom
):
    path = _write_image(tmp_path / "img.png", size, region)
    box = Box("a", 0, *region)
    viewer = _viewer(qtbot, [ViewerImage("img.png", path)], [box])
    canvas = viewer.canvas
    if zoom is not None:
        canvas.set_zoom(zoom)
        canvas.center_on(QPointF((region[0] + region[2]) / 2, (region[1] + region[3]) / 2))
    t = canvas.transform()
    assert t == compute_transform(QSize(*size), CANVAS, zoom, t.to_image(QPointF(260, 200)))

    # Where the transform says the box's edges are (pixel x covers [x, x + 1)).
    expected = (
        t.dx + region[0] * t.scale,
        t.dy + region[1] * t.scale,
        t.dx + region[2] * t.scale - 1,
        t.dy + region[3] * t.scale - 1,
    )
    assert expected[2] - expected[0] > 30  # the label chip stays off the right band we measure
    shown = _grab(viewer)
    colour = label_colour("a")
    measured = _outline_edges(shown, tuple(round(v) for v in expected), colour)
    for got, want in zip(measured, expected, strict=True):
        assert abs(got - want) <= 1, (measured, expected)

    # The same edges, found in the image's own pixels with the boxes hidden (T).
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_T)
    assert not canvas.boxes_visible
    bare = _grab(viewer)
    cy, cx = round((expected[1] + expected[3]) / 2), round((expected[0] + expected[2]) / 2)
    mark = (
        _extent(bare, (cx, cy), (-1, 0), _near_mark),
        _extent(bare, (cx, cy), (0, -1), _near_mark),
        _extent(bare, (cx, cy), (1, 0), _near_mark),
        _extent(bare, (cx, cy), (0, 1), _near_mark),
    )
    for got, want in zip(measured, mark, strict=True):
        assert abs(got - want) <= 1, (measured, mark)
    qtbot.keyClick(canvas, Qt.Key.Key_T)
    assert _grab(viewer) == shown  # T again: the very same pixels come back
    SHOTS.mkdir(exist_ok=True)
    shown.save(str(SHOTS / f"overlay-{size[0]}x{size[1]}-{zoom or 'fit'}.png"))


def test_exif_rotated_jpeg_is_shown_upright_with_the_box_on_the_right_pixels(qtbot, tmp_path):
    # The photo as it should look: 200 × 300, a mark in the lower left.
    region = (20, 150, 110, 260)
    upright = Image.new("RGB", (200, 300), GREY)
    upright.paste(MARK, region)
    # The camera stored it turned on its side, with EXIF orientation 6 ("rotate 90° clockwise").
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    jpeg = tmp_path / "sideways.jpg"
    stored.save(jpeg, quality=95, exif=exif)
    blobs = BlobStore(tmp_path / "blobs")
    [attachment] = ingest_path(jpeg, blobs)
    assert attachment.status is AttachmentStatus.READY
    assert (attachment.width, attachment.height) == (200, 300)

    viewer = _viewer(
        qtbot, [ViewerImage(attachment.name, blobs.path(attachment.sha256))], [Box("a", 0, *region)]
    )
    viewer.canvas.set_zoom(1.0)
    t = viewer.canvas.transform()
    shown = _grab(viewer)
    expected = (
        t.dx + region[0],
        t.dy + region[1],
        t.dx + region[2] - 1,
        t.dy + region[3] - 1,
    )
    measured = _outline_edges(shown, expected, label_colour("a"))
    assert all(abs(g - w) <= 1 for g, w in zip(measured, expected, strict=True)), measured
    viewer.canvas.set_boxes_visible(False)
    bare = _grab(viewer)
    # JPEG blurs the mark's edges a little; its middle is where the box says, upright.
    assert _near_mark(_rgb(bare, t.dx + 65, t.dy + 205))
    assert not _near_mark(_rgb(bare, t.dx + 150, t.dy + 60))
    viewer.canvas.set_boxes_visible(True)
    SHOTS.mkdir(exist_ok=True)
    viewer.grab().save(str(SHOTS / "viewer-exif-rotated.png"))


def test_png_export_has_the_overlays_pixels_at_100_percent(qtbot, tmp_path):
    path = _write_image(tmp_path / "desk.png", (320, 240), (40, 50, 150, 200))
    boxes = [Box("ruler", 0, 40, 50, 150, 200), Box("cup", 0, 180, 30, 300, 120)]
    viewer = _viewer(qtbot, [ViewerImage("desk.png", path)], boxes)
    viewer.canvas.actual_size()
    dest = tmp_path / "annotated.png"
    viewer.choose_path = lambda *_args: dest
    viewer.export_png_action.trigger()
    exported = QImage(str(dest)).convertToFormat(QImage.Format.Format_RGB32)
    assert exported.size() == QSize(320, 240)  # native size

    shown = _grab(viewer)
    rect = viewer.canvas.image_rect()
    assert rect.size() == QSize(320, 240)
    on_screen = shown.copy(rect)
    # Every pixel of every box outline is the same in the file as on screen.
    colours = label_colours(b.label for b in boxes)
    assert colours["ruler"] != colours["cup"]
    for box in boxes:
        colour = colour_of(box.label, colours)
        band = [
            (x, y)
            for x in range(box.x1, box.x2)
            for y in range(box.y1, box.y2)
            if min(x - box.x1, box.x2 - 1 - x, y - box.y1, box.y2 - 1 - y) < OUTLINE_PX
        ]
        assert band
        for x, y in band:
            assert exported.pixelColor(x, y) == on_screen.pixelColor(x, y)
        assert exported.pixelColor(box.x1, box.y1 + 10) == colour
    # And the render function gives the file's pixels (the export is that function, saved).
    assert render_annotated(QImage(str(path)), boxes) == exported
    differing = sum(
        exported.pixel(x, y) != on_screen.pixel(x, y) for x in range(320) for y in range(240)
    )
    assert differing == 0
    # Without boxes the file's pixels would be plain image: the export really drew them.
    plain = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB32)
    assert plain.pixelColor(box.x1, box.y1 + 10) != exported.pixelColor(box.x1, box.y1 + 10)


def test_json_and_coco_files_are_written_for_every_image_of_the_message(qtbot, tmp_path):
    first = _write_image(tmp_path / "one.png", (320, 240), (10, 10, 20, 20))
    second = _write_image(tmp_path / "two.png", (200, 300), (10, 10, 20, 20))
    boxes = [Box("cat", 0, 32, 24, 160, 120), Box("dog", 1, 40, 90, 120, 270)]
    viewer = _viewer(qtbot, [ViewerImage("one.png", first), ViewerImage("two.png", second)], boxes)
    assert viewer.switcher.isVisible() and viewer.switcher.count() == 2
    assert viewer.canvas.boxes() == [(0, boxes[0])]
    viewer.switcher.setCurrentIndex(1)
    assert viewer.current_index == 1
    assert viewer.canvas.boxes() == [(1, boxes[1])]
    assert viewer.box_list.box_model.rowCount() == 1

    written = viewer.export_json(tmp_path / "boxes.json")
    assert written == tmp_path / "boxes.json"
    data = json.loads(written.read_text(encoding="utf-8"))
    assert [(b["label"], b["image"], b["x1"], b["y2"]) for b in data["boxes"]] == [
        ("cat", 0, 32, 120),
        ("dog", 1, 40, 270),
    ]
    assert [(i["name"], i["width"], i["height"]) for i in data["images"]] == [
        ("one.png", 320, 240),
        ("two.png", 200, 300),
    ]
    viewer.choose_path = lambda *_args: tmp_path / "coco.json"
    viewer.export_coco_action.trigger()
    coco = json.loads((tmp_path / "coco.json").read_text(encoding="utf-8"))
    assert [a["bbox"] for a in coco["annotations"]] == [[32, 24, 128, 96], [40, 90, 80, 180]]
    assert [c["name"] for c in coco["categories"]] == ["cat", "dog"]

    # A folder that cannot be written gives a sentence naming the file, not a traceback.
    posted: list[str] = []
    viewer.message_posted.connect(posted.append)
    assert viewer.export_json(tmp_path / "missing" / "boxes.json") is None
    assert posted and "boxes.json" in posted[-1]
    assert viewer.notice.isVisible()


def test_box_list_copies_label_and_coordinates_and_links_to_the_canvas(qtbot, tmp_path):
    path = _write_image(tmp_path / "desk.png", (320, 240), (40, 50, 150, 200))
    boxes = [Box("ruler", 0, 40, 50, 150, 200), Box("coffee cup", 0, 180, 30, 300, 120)]
    viewer = _viewer(qtbot, [ViewerImage("desk.png", path)], boxes)
    box_list = viewer.box_list
    assert box_list.copy_all() == "ruler: 40, 50, 150, 200\ncoffee cup: 180, 30, 300, 120"
    box_list.select_box(1)
    box_list.setFocus()
    qtbot.keyClick(box_list, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == "coffee cup: 180, 30, 300, 120"
    menu = box_list.context_menu()
    assert [a.text() for a in menu.actions()] == ["Copy coordinates", "Copy all"]

    # Hovering a box on the canvas selects its row; highlighting from outside does both.
    canvas = viewer.canvas
    centre = canvas.transform().to_view(240, 75).toPoint()
    with qtbot.waitSignal(viewer.box_hovered) as hovered:
        qtbot.mouseMove(canvas, centre)
    assert hovered.args == [1]
    assert canvas.highlighted == 1
    assert [i.row() for i in box_list.selectionModel().selectedRows()] == [1]
    viewer.highlight_box(0)
    assert canvas.highlighted == 0
    assert viewer.count_label.text() == "2 boxes"
    SHOTS.mkdir(exist_ok=True)
    viewer.grab().save(str(SHOTS / "viewer-box-list.png"))


def test_label_text_is_plain_and_readable_on_every_palette_colour():
    from app.ui.viewer.overlay_render import PALETTE, display_label

    for value in PALETTE:
        background = QColor(value)
        text = text_colour_on(background)
        lum = lambda c: 0.2126 * c.redF() + 0.7152 * c.greenF() + 0.0722 * c.blueF()  # noqa: E731
        assert abs(lum(text) - lum(background)) > 0.3
    assert label_colour("Ruler") == label_colour("  ruler ")  # stable per label
    # Two labels that hash to one colour still differ within a message, whatever the order.
    assert label_colour("Coffee cup") == label_colour("Phone")
    one = label_colours(["Ruler", "Coffee cup", "Phone", "ruler"])
    assert len({c.name() for c in one.values()}) == 3
    assert one == label_colours(["Ruler", "Coffee cup", "Phone"])
    assert one["coffee cup"] == label_colour("Coffee cup")  # the first keeps its own colour
    assert display_label(Box("<b>x</b>", 0, 0, 0, 1, 1), 0) == "<b>x</b>"  # shown as typed
    assert display_label(Box("", 0, 0, 0, 1, 1), 2) == "box 3"
