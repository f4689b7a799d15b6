"""The chat view: bubbles in order, streaming through the throttle, actions and scrolling."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QLabel

from app.core.messages import (
    Attachment,
    AttachmentKind,
    AttachmentStatus,
    Message,
    Role,
    StopReason,
)
from app.ui.transcript.view import EMPTY_TEXT, ChatView

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


def user(message_id: str, text: str = "Question?", **fields) -> Message:
    return Message(message_id, "s1", Role.USER, text, 1.0, **fields)


def answer(
    message_id: str, text: str = "Answer.", stop: StopReason | None = StopReason.EOS
) -> Message:
    return Message(message_id, "s1", Role.ASSISTANT, text, 2.0, stop_reason=stop)


def named(widget, name: str) -> QAbstractButton:
    matches = [b for b in widget.findChildren(QAbstractButton) if b.accessibleName() == name]
    assert len(matches) == 1, f"expected one control named {name!r}"
    return matches[0]


@pytest.fixture
def view(qtbot) -> ChatView:
    chat = ChatView()
    qtbot.addWidget(chat)
    chat.resize(500, 300)
    chat.show()
    qtbot.waitExposed(chat)
    return chat


def test_empty_state_shows_until_there_are_messages(view):
    empty = view.findChild(QLabel, "chatEmptyState")
    assert empty.text() == EMPTY_TEXT
    assert empty.isVisible()

    view.add_message(user("u1"))
    assert not empty.isVisible()

    view.clear()
    assert empty.isVisible()
    assert view.message_ids() == []


def test_only_the_last_answer_offers_regenerate_and_signals_are_forwarded(qtbot, view):
    view.set_messages([user("u1"), answer("a1"), user("u2"), answer("a2")])

    assert view.message_ids() == ["u1", "a1", "u2", "a2"]
    # isHidden, not isVisible: Qt shows widgets added to a shown window a moment later.
    assert named(view.message_widget("a1"), "Regenerate answer").isHidden()
    regenerate = named(view.message_widget("a2"), "Regenerate answer")
    assert not regenerate.isHidden()

    with qtbot.waitSignal(view.regenerate_requested) as blocker:
        qtbot.mouseClick(regenerate, Qt.MouseButton.LeftButton)
    assert blocker.args == ["a2"]

    with qtbot.waitSignal(view.edit_requested) as blocker:
        qtbot.mouseClick(
            named(view.message_widget("u1"), "Edit and resend message"), Qt.MouseButton.LeftButton
        )
    assert blocker.args == ["u1"]


def test_streamed_text_arrives_through_the_throttle_then_finishes(qtbot, view):
    view.set_messages([user("u1"), answer("a1")])
    view.begin_stream(answer("a2", "", stop=None))
    bubble = view.message_widget("a2")

    # While streaming, nothing may regenerate or edit (that would fork the chat mid-answer).
    assert view.is_streaming()
    assert named(view.message_widget("a1"), "Regenerate answer").isHidden()
    assert not named(view.message_widget("u1"), "Edit and resend message").isEnabled()

    chunks = [f"part{i} " for i in range(300)]
    for chunk in chunks:
        view.append_stream("a2", chunk)
    view.append_stream("unknown", "ignored")
    assert bubble.text == ""  # nothing yet: the throttle flushes on its timer
    qtbot.waitUntil(lambda: bubble.text == "".join(chunks), timeout=2000)

    view.finish_stream(answer("a2", "Final **answer**."))

    assert not view.is_streaming()
    assert bubble.view.toPlainText() == "Final answer."
    assert not named(bubble, "Regenerate answer").isHidden()
    assert named(view.message_widget("u1"), "Edit and resend message").isEnabled()


def test_follows_the_stream_at_the_bottom_but_not_after_scrolling_up(qtbot, view):
    view.set_messages([m for i in range(6) for m in (user(f"u{i}"), answer(f"a{i}"))])
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())

    view.begin_stream(answer("live", "", stop=None))
    before = bar.maximum()
    for i in range(20):
        view.append_stream("live", f"line {i}\n")
    qtbot.waitUntil(lambda: bar.maximum() > before and bar.value() == bar.maximum())

    bar.setValue(0)  # the user scrolls up to read
    before = bar.maximum()
    live = view.message_widget("live")
    # Nothing moves the bar while the rest streams in, is laid out and grows the transcript.
    with qtbot.assertNotEmitted(bar.valueChanged):
        for i in range(20):
            view.append_stream("live", f"more {i}\n")
        qtbot.waitUntil(lambda: "more 19" in live.view.toPlainText() and bar.maximum() > before)
    assert bar.value() == 0


def test_attachment_clicks_are_forwarded(qtbot, view):
    photo = Attachment("photo.jpg", AttachmentKind.IMAGE, AttachmentStatus.USED, sha256="cd")
    view.set_messages([user("u1", attachments=(photo,))], thumbnail_for=lambda _a: None)

    with qtbot.waitSignal(view.attachment_activated) as blocker:
        qtbot.mouseClick(named(view, "Attachment photo.jpg, used"), Qt.MouseButton.LeftButton)
    assert blocker.args == [photo]


def test_finish_without_begin_adds_the_message(view):
    view.finish_stream(answer("a9", "Failed early.", stop=StopReason.ERROR))
    assert view.message_ids() == ["a9"]
