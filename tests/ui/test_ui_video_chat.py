"""A clip dropped on the chat is asked about through five frames the user can see before sending."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.core.messages import AttachmentKind, AttachmentStatus
from tests.helpers.offscreen import drop_files
from tests.helpers.video_clips import write_clip


def test_a_dropped_clip_gets_five_frame_chips_and_goes_to_scout_as_those_frames(
    qtbot, open_window, tmp_path
):
    clip = write_clip(tmp_path / "clip.avi")
    window = open_window(["The square moves right."])
    drop_files(window, [clip])

    chips = window.composer.chips
    qtbot.waitUntil(lambda: len(chips.ready_attachments()) == 6, timeout=30_000)
    ready = chips.ready_attachments()
    assert ready[0].kind is AttachmentKind.VIDEO
    assert [a.name.partition(" @ ")[0] for a in ready[1:]] == ["clip.avi"] * 5
    assert all(a.kind is AttachmentKind.IMAGE for a in ready[1:])

    window.composer.editor.setFocus()
    qtbot.keyClicks(window.composer.editor, "What happens?")
    qtbot.keyClick(window.composer.editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=10_000)

    [turn] = window.engine.requests[0].turns
    assert len(turn.images) == 5
    assert "clip.avi @ " in turn.text  # the frames' times are in the prompt
    question = window._store.messages(window.controller.session_id)[0]
    assert [a.status for a in question.attachments] == [AttachmentStatus.USED] * 6
