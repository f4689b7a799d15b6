"""Attachment chips wrap onto new rows inside their bubble instead of widening it."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget

from app.core.messages import Attachment, AttachmentKind, AttachmentStatus, Message, Role
from app.ui.transcript.attachment_badge import AttachmentBadge
from app.ui.transcript.message_widget import MessageWidget
from app.ui.widgets.flow_layout import FlowLayout


def test_flow_layout_wraps_at_the_width_and_keeps_order(qtbot):
    host = QWidget()
    qtbot.addWidget(host)
    layout = FlowLayout(host, spacing=4)
    labels = []
    for i in range(10):
        label = QLabel(f"item {i}")
        label.setFixedSize(60, 20)
        layout.addWidget(label)
        labels.append(label)
    host.resize(200, layout.heightForWidth(200))
    host.show()
    qtbot.waitExposed(host)
    rows = sorted({label.y() for label in labels})
    assert len(rows) == 4  # 3 per row at 200 px: 60 + 4 + 60 + 4 + 60 = 188
    assert all(label.geometry().right() < 200 for label in labels)
    positions = [(label.y(), label.x()) for label in labels]
    assert positions == sorted(positions)  # reading order kept
    assert layout.heightForWidth(200) == 4 * 20 + 3 * 4


def test_a_message_with_many_frames_stays_as_wide_as_the_chat(qtbot):
    frames = tuple(
        Attachment(f"clip.mp4 @ 00:{i:02d}.000", AttachmentKind.IMAGE, AttachmentStatus.USED)
        for i in range(12)
    )
    message = Message("m", "s", Role.USER, "Where is the square?", 0.0, frames)
    widget = MessageWidget(message)
    qtbot.addWidget(widget)
    widget.resize(480, 400)
    widget.show()
    qtbot.waitExposed(widget)
    # A row of twelve chips would need ~1,300 px; wrapped, the bubble fits the 480 px chat.
    assert widget.minimumSizeHint().width() <= 480
    chips = widget.findChildren(AttachmentBadge)
    assert len(chips) == 12
    assert all(chip.geometry().right() < 480 for chip in chips)
    assert len({chip.y() for chip in chips}) > 1
