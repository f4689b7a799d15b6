"""One message bubble: streaming appends without re-rendering, footer, chips and actions."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPixmap
from PySide6.QtWidgets import QAbstractButton, QLabel

from app.core import render
from app.core.messages import (
    Attachment,
    AttachmentKind,
    AttachmentStatus,
    Message,
    Role,
    StopReason,
    Timings,
)
from app.ui.transcript.attachment_badge import status_text
from app.ui.transcript.message_widget import MessageWidget, footer_text
from app.ui.widgets.markdown_view import TextDisplay

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


def message(role: Role = Role.ASSISTANT, text: str = "", **fields) -> Message:
    return Message(
        id=fields.pop("id", "m1"),
        session_id="s1",
        role=role,
        text=text,
        created_at=1.0,
        **fields,
    )


def button(widget, accessible_name: str) -> QAbstractButton:
    """Find a control the way assistive technology would: by its accessible name."""
    matches = [
        b for b in widget.findChildren(QAbstractButton) if b.accessibleName() == accessible_name
    ]
    assert len(matches) == 1, f"expected one control named {accessible_name!r}"
    return matches[0]


@pytest.fixture
def render_calls(monkeypatch) -> list[str]:
    """Count calls of render_markdown (the real one still does the work)."""
    calls: list[str] = []
    real = render.render_markdown

    def counting(text: str, **kwargs) -> str:
        calls.append(text)
        return real(text, **kwargs)

    monkeypatch.setattr(render, "render_markdown", counting)
    return calls


def test_streaming_only_appends_and_renders_markdown_once_at_the_end(qtbot, render_calls):
    widget = MessageWidget(message(stop_reason=None))
    qtbot.addWidget(widget)
    document = widget.view.document()
    edits: list[tuple[int, int, int]] = []
    document.contentsChange.connect(lambda pos, removed, added: edits.append((pos, removed, added)))
    chunks = [f"word{i}\n" if i % 50 == 49 else f"**w{i}** " for i in range(4000)]

    for chunk in chunks:
        widget.append_text(chunk)

    assert render_calls == []  # no markdown rendering while streaming
    # Every edit inserted text exactly at the end and removed nothing: the per-chunk cost cannot
    # depend on how long the message already is.
    assert len(edits) == len(chunks)
    end = 0
    for position, removed, added in edits:
        assert (position, removed) == (end, 0)
        end += added
    assert widget.text == "".join(chunks)
    assert widget.view.toPlainText() == "".join(chunks)

    final = message(text="".join(chunks), stop_reason=StopReason.EOS)
    widget.finish(final)

    # A text this long is converted off the GUI thread: the bubble formats it a moment later.
    qtbot.waitUntil(lambda: widget.view.display is TextDisplay.FORMATTED)
    assert render_calls == [final.text]
    assert "**" not in widget.view.toPlainText()  # rendered now: bold markers became bold
    assert not widget.streaming


def test_copy_puts_the_raw_markdown_on_the_clipboard(qtbot):
    text = "Here is **bold** and `code`."
    widget = MessageWidget(message(text=text, stop_reason=StopReason.EOS))
    qtbot.addWidget(widget)
    widget.show()
    QGuiApplication.clipboard().clear()

    qtbot.mouseClick(button(widget, "Copy message text"), Qt.MouseButton.LeftButton)

    assert QGuiApplication.clipboard().text() == text


def test_copy_while_streaming_copies_what_has_arrived(qtbot):
    widget = MessageWidget(message(stop_reason=None))
    qtbot.addWidget(widget)
    widget.append_text("Half an ")
    widget.append_text("answer")
    widget.copy_to_clipboard()
    assert QGuiApplication.clipboard().text() == "Half an answer"


def test_regenerate_is_offered_only_when_asked_and_emits_the_id(qtbot):
    widget = MessageWidget(message(id="a7", text="Answer.", stop_reason=StopReason.EOS))
    qtbot.addWidget(widget)
    widget.show()
    regenerate = button(widget, "Regenerate answer")
    assert not regenerate.isVisible()
    assert not button(widget, "Edit and resend message").isVisible()

    widget.set_regenerate_available(True)
    with qtbot.waitSignal(widget.regenerate_requested) as blocker:
        qtbot.mouseClick(regenerate, Qt.MouseButton.LeftButton)
    assert blocker.args == ["a7"]


def test_edit_and_resend_on_a_user_message(qtbot):
    widget = MessageWidget(message(Role.USER, "What is this?", id="u3"))
    qtbot.addWidget(widget)
    widget.show()
    widget.set_regenerate_available(True)  # never on a user message
    assert not button(widget, "Regenerate answer").isVisible()

    with qtbot.waitSignal(widget.edit_requested) as blocker:
        qtbot.mouseClick(button(widget, "Edit and resend message"), Qt.MouseButton.LeftButton)
    assert blocker.args == ["u3"]


@pytest.mark.parametrize(
    ("reason", "timings", "expected"),
    [
        (StopReason.EOS, None, ""),
        (StopReason.CANCELLED, None, "stopped"),
        (
            StopReason.LENGTH,
            Timings(ttft_s=0.42, decode_tokens_per_s=12.34),
            "cut at max tokens · 12.3 tok/s · first token 0.42 s",
        ),
        (
            StopReason.EOS,
            Timings(load_s=31.0, decode_tokens_per_s=20.0),
            "20.0 tok/s · model load 31.0 s",
        ),
        (None, None, ""),
    ],
)
def test_footer_says_how_the_answer_ended(reason, timings, expected):
    assert footer_text(message(stop_reason=reason, timings=timings)) == expected


def test_an_error_is_shown_as_plain_text(qtbot):
    widget = MessageWidget(
        message(stop_reason=StopReason.ERROR, error="<b>CUDA</b> out of memory.")
    )
    qtbot.addWidget(widget)
    widget.show()
    error = widget.findChild(QLabel, "messageError")
    assert error.isVisible()
    assert error.text() == "<b>CUDA</b> out of memory."
    assert error.textFormat() == Qt.TextFormat.PlainText
    assert widget.findChild(QLabel, "messageFooter").text() == "failed"


def test_attachment_chips_show_status_and_report_clicks(qtbot):
    used = Attachment("cat.jpg", AttachmentKind.IMAGE, AttachmentStatus.USED, sha256="ab")
    skipped = Attachment(
        "dog.png", AttachmentKind.IMAGE, AttachmentStatus.SKIPPED, detail="6th image: Scout takes 5"
    )
    thumbnails: list[str] = []

    def thumbnail_for(attachment: Attachment) -> QPixmap | None:
        thumbnails.append(attachment.name)
        pixmap = QPixmap(16, 16)
        pixmap.fill(QColor("blue"))
        return pixmap

    widget = MessageWidget(
        message(Role.USER, "Compare these.", attachments=(used, skipped)), thumbnail_for
    )
    qtbot.addWidget(widget)
    widget.show()

    assert thumbnails == ["cat.jpg", "dog.png"]
    assert status_text(used) == "used"
    assert status_text(skipped) == "skipped: 6th image: Scout takes 5"
    chip = button(widget, "Attachment dog.png, skipped: 6th image: Scout takes 5")
    with qtbot.waitSignal(widget.attachment_activated) as blocker:
        qtbot.mouseClick(chip, Qt.MouseButton.LeftButton)
    assert blocker.args == [skipped]
