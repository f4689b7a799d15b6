"""Grounding through the real window: Locate, boxes stored and drawn, hover links, reopening."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction, QImage, QTextCursor
from PySide6.QtWidgets import QPushButton

from app.core.grounding import locate_prompt
from app.core.messages import Box, Role
from app.ui.shell.main_window import MainWindow
from app.ui.viewer.overlay_render import OUTLINE_PX, colour_of, label_colours

SHOTS = Path("/tmp/ui-shots")
LOCATE_ANSWER = (
    "I can see two things on the desk:\n\n"
    "* **Ruler**: <BBOX>0.25,0.4,0.75,0.6</BBOX>\n"
    "* **Coffee cup**: <BBOX>0.05,0.05,0.2,0.3</BBOX>\n"
)
# In a 320 × 240 picture those normalised boxes are these pixels.
RULER = Box("Ruler", 0, 80, 96, 240, 144)
CUP = Box("Coffee cup", 0, 16, 12, 64, 72)


def _picture(tmp_path: Path, name: str = "desk.png", size=(320, 240)) -> Path:
    path = tmp_path / name
    image = Image.new("RGB", size, (200, 205, 210))
    image.paste((90, 60, 40), (80, 96, 240, 144))  # the ruler, where the answer says
    image.save(path)
    return path


def _attach(qtbot, window: MainWindow, *paths: Path) -> None:
    window.composer.attach_paths(list(paths))
    qtbot.waitUntil(
        lambda: len(window.composer.chips.ready_attachments()) == len(paths), timeout=10_000
    )


def _wait_idle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=10_000)


def _answer(window: MainWindow):
    session_id = window.controller.session_id
    assert session_id is not None
    messages = window._store.messages(session_id)
    assert messages[-1].role is Role.ASSISTANT
    return messages


def _assert_box_drawn(window: MainWindow, box: Box) -> None:
    """The box's outline is on screen where the viewer's transform puts it."""
    canvas = window.image_viewer.canvas
    assert window.image_dock.isVisible()
    shown = canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    t = canvas.transform()
    colour = colour_of(box.label, label_colours(b.label for b in window.image_viewer.boxes))
    left, right = t.view_x(box.x1), t.view_x(box.x2) - 1
    middle = (t.view_y(box.y1) + t.view_y(box.y2)) // 2
    assert shown.pixelColor(left, middle) == colour
    assert shown.pixelColor(right, middle) == colour
    assert shown.pixelColor(left - OUTLINE_PX - 1, middle) != colour


def _locate_action(window: MainWindow) -> QAction:
    return window.findChild(QAction, "locate")


def test_locate_sends_the_grounding_prompt_and_draws_the_stored_boxes(qtbot, open_window, tmp_path):
    window = open_window([LOCATE_ANSWER], chunk_delay_s=0.001)
    _attach(qtbot, window, _picture(tmp_path))
    asked: list[object] = []
    window.grounding.ask_target = lambda parent: asked.append(parent) or "the ruler"
    assert _locate_action(window).shortcut().toString() == "Ctrl+Shift+L"
    _locate_action(window).trigger()
    _wait_idle(qtbot, window)

    assert asked == [window]
    request = window.engine.requests[0]
    assert request.turns[-1].text == locate_prompt("the ruler", 1)
    assert len(request.turns[-1].images) == 1
    user, answer = _answer(window)
    assert user.text == "Locate: the ruler"  # what the chat shows reads naturally
    assert answer.boxes == (RULER, CUP)
    assert not window.composer.chips.chips()  # the picture went with the question

    # The answer opened the viewer by itself, with both boxes drawn and listed.
    viewer = window.image_viewer
    assert viewer.message_id == answer.id
    qtbot.waitUntil(window.image_dock.isVisible)
    _assert_box_drawn(window, RULER)
    _assert_box_drawn(window, CUP)
    assert viewer.box_list.copy_all() == "Ruler: 80, 96, 240, 144\nCoffee cup: 16, 12, 64, 72"
    bubble = window.chat_view.message_widget(answer.id)
    show = [b for b in bubble.findChildren(QPushButton) if b.objectName() == "showBoxesButton"]
    assert show and show[0].isVisible() and show[0].text() == "Show boxes (2)"

    # T (in the viewer) hides every box and brings them back.
    canvas = viewer.canvas
    canvas.setFocus()
    before = canvas.grab().toImage()
    qtbot.keyClick(canvas, Qt.Key.Key_T)
    assert not canvas.boxes_visible and canvas.grab().toImage() != before
    qtbot.keyClick(canvas, Qt.Key.Key_T)
    assert canvas.grab().toImage() == before
    # T typed in the composer stays a letter.
    window.composer.focus_input()
    qtbot.keyClick(window.composer.editor, Qt.Key.Key_T)
    assert canvas.boxes_visible and window.composer.text() == "t"
    SHOTS.mkdir(exist_ok=True)
    window.grab().save(str(SHOTS / "window-locate.png"))


def test_hovering_a_box_highlights_its_words_and_hovering_words_highlights_the_box(
    qtbot, open_window, tmp_path
):
    window = open_window([LOCATE_ANSWER])
    _attach(qtbot, window, _picture(tmp_path))
    window.composer.set_text("/locate the ruler and the cup")
    window.controller.send()
    _wait_idle(qtbot, window)
    _user, answer = _answer(window)
    assert window.engine.requests[0].turns[-1].text == locate_prompt("the ruler and the cup", 1)
    bubble = window.chat_view.message_widget(answer.id)
    view = bubble.view
    linker = bubble.linker
    assert linker is not None

    # Box → words: the pointer over the ruler's box highlights "Ruler" and its coordinates.
    canvas = window.image_viewer.canvas
    qtbot.waitUntil(window.image_dock.isVisible)
    centre = canvas.transform().to_view(160, 120).toPoint()
    qtbot.mouseMove(canvas, centre)
    qtbot.waitUntil(lambda: bool(view.extraSelections()))
    words = [s.cursor.selectedText() for s in view.extraSelections()]
    assert words == ["Ruler", "<BBOX>0.25,0.4,0.75,0.6</BBOX>"]
    qtbot.mouseMove(canvas, QPoint(2, 2))  # off every box (outside the image)
    qtbot.waitUntil(lambda: not view.extraSelections())

    # Words → box: the pointer over "Coffee cup" in the answer highlights the cup's box.
    start = view.document().toPlainText().index("Coffee cup")
    cursor = QTextCursor(view.document())
    cursor.setPosition(start + 3)
    point = view.cursorRect(cursor).center() + QPoint(2, 0)
    with qtbot.waitSignal(bubble.box_hovered) as hovered:
        qtbot.mouseMove(view.viewport(), point)
    assert hovered.args == [answer.id, 1]
    assert canvas.highlighted == 1
    assert [i.row() for i in window.image_viewer.box_list.selectionModel().selectedRows()] == [1]
    assert view.extraSelections()[0].cursor.selectedText() == "Coffee cup"
    SHOTS.mkdir(exist_ok=True)
    window.grab().save(str(SHOTS / "window-hover-words.png"))


def test_reopened_session_redraws_boxes_and_a_thumbnail_opens_them(qtbot, open_window, tmp_path):
    window = open_window([LOCATE_ANSWER])
    _attach(qtbot, window, _picture(tmp_path))
    window.grounding.locate(thing="the ruler")
    _wait_idle(qtbot, window)
    session_id = window.controller.session_id
    _user, answer = _answer(window)
    window.close()

    # A new window over the same data folder (a restart): nothing is shown until asked.
    again = open_window(["unused"])
    again.controller.open_session(session_id)
    bubble = again.chat_view.message_widget(answer.id)
    assert bubble is not None and bubble.message.boxes == (RULER, CUP)
    assert bubble.linker is not None  # words are linked again
    assert not again.image_dock.isVisible()
    show = next(b for b in bubble.findChildren(QPushButton) if b.objectName() == "showBoxesButton")
    show.click()
    qtbot.waitUntil(again.image_dock.isVisible)
    _assert_box_drawn(again, RULER)
    _assert_box_drawn(again, CUP)

    # Clicking the picture in the question opens it with the boxes of the answer about it.
    again.image_viewer.clear()
    user_bubble = again.chat_view.message_widget(again.chat_view.message_ids()[0])
    with qtbot.waitSignal(again.chat_view.attachment_activated):
        user_bubble.attachment_activated.emit(user_bubble.message.attachments[0])
    assert again.image_viewer.message_id == answer.id
    _assert_box_drawn(again, RULER)


def test_locate_from_a_thumbnail_menu_and_boxes_in_an_ordinary_answer(qtbot, open_window, tmp_path):
    ordinary = "The cat sits here: [0.1, 0.2, 0.5, 0.6] and a broken one <BBOX>abc</BBOX>."
    window = open_window([ordinary, LOCATE_ANSWER])
    first = _picture(tmp_path, "first.png")
    _attach(qtbot, window, first)
    window.composer.set_text("What is in the picture?")
    window.controller.send()
    _wait_idle(qtbot, window)
    _user, answer = _answer(window)
    # An ordinary answer's boxes are found, stored and drawn; the dropped one is a small note.
    assert answer.boxes == (Box("cat", 0, 32, 48, 160, 144),)
    bubble = window.chat_view.message_widget(answer.id)
    notes = bubble.findChild(type(bubble._footer), "messageNotes")
    assert notes.isVisible() and "left out" in notes.text()
    qtbot.waitUntil(window.image_dock.isVisible)
    _assert_box_drawn(window, answer.boxes[0])

    # Right-click on the picture in the question: "Locate in this image…".
    user_bubble = window.chat_view.message_widget(window.chat_view.message_ids()[0])
    attachment = user_bubble.message.attachments[0]
    menu = user_bubble.chip_menu(attachment)
    locate = next(a for a in menu.actions() if a.text() == "Locate in this image…")
    window.grounding.ask_target = lambda _parent: "the ruler"
    locate.trigger()
    _wait_idle(qtbot, window)
    messages = _answer(window)
    assert messages[-2].text == "Locate: the ruler"
    assert [a.sha256 for a in messages[-2].attachments] == [attachment.sha256]
    assert window.engine.requests[-1].turns[-1].text == locate_prompt("the ruler", 1)
    assert messages[-1].boxes == (RULER, CUP)
    assert window.image_viewer.message_id == messages[-1].id


def test_locate_refusals_and_multi_image_answers(qtbot, open_window, tmp_path):
    cat = "Image 1: **cat** <BBOX>0.1,0.1,0.5,0.5</BBOX>"
    answer_text = f"{cat}\nImage 2: **dog** <BBOX>0.2,0.3,0.6,0.9</BBOX>"
    window = open_window([answer_text])
    window.grounding.ask_target = lambda _parent: "the cat"
    # No image anywhere: Locate says so and asks nothing.
    assert not window.grounding.locate()
    assert "needs an image" in window.composer.notice.text()
    window.composer.set_text("/locate")
    _attach(qtbot, window, _picture(tmp_path))
    assert not window.controller.send()
    assert "Say what to find" in window.composer.notice.text()
    assert window.composer.text() == "/locate"  # kept for the user to finish

    window.composer.clear()
    _attach(qtbot, window, _picture(tmp_path, "a.png"), _picture(tmp_path, "b.png", (200, 300)))
    window.composer.set_text("/locate the pets")
    window.controller.send()
    _wait_idle(qtbot, window)
    assert window.engine.requests[-1].turns[-1].text == locate_prompt("the pets", 2)
    _user, answer = _answer(window)
    assert answer.boxes == (Box("cat", 0, 32, 24, 160, 120), Box("dog", 1, 40, 90, 120, 270))
    viewer = window.image_viewer
    qtbot.waitUntil(window.image_dock.isVisible)
    assert viewer.switcher.isVisible() and viewer.switcher.count() == 2
    viewer.highlight_box(1)  # a box on the other image switches to it
    assert viewer.current_index == 1
    _assert_box_drawn(window, answer.boxes[1])
    SHOTS.mkdir(exist_ok=True)
    window.grab().save(str(SHOTS / "window-multi-image.png"))
