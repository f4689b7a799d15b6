"""Bad videos dropped on the window: an error chip naming each file, and the app goes on."""

from __future__ import annotations

import os

from app.core.messages import AttachmentStatus, Role
from tests.helpers.offscreen import drop_files
from tests.helpers.video_clips import write_clip
from tests.helpers.video_ui import open_clip, shot, video_window


def _bad_videos(folder):
    folder.mkdir()
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    noise = folder / "noise.mp4"
    noise.write_bytes(os.urandom(64 * 1024))
    playlist = folder / "stream.mp4"
    playlist.write_text("#EXTM3U\n#EXTINF:10,\nhttps://example.com/part1.ts\n", encoding="utf-8")
    return [empty, noise, playlist]


def test_bad_videos_become_error_chips_that_name_them_within_seconds(qtbot, open_window, tmp_path):
    window, video = video_window(open_window, replies=["Still here."])
    bad = _bad_videos(tmp_path / "bad")
    drop_files(window.chat_view, bad)
    chips = window.composer.chips
    # Each file is probed in the decoder's child process and refused within seconds.
    qtbot.waitUntil(lambda: not chips.is_reading() and len(chips.chips()) == 3, timeout=10_000)

    by_name = {c.name: c.attachment for c in chips.chips()}
    assert set(by_name) == {"empty.mp4", "noise.mp4", "stream.mp4"}
    for name, attachment in by_name.items():
        assert attachment.status is AttachmentStatus.ERROR
        assert name in attachment.detail  # the sentence names the file
    assert "empty" in by_name["empty.mp4"].detail
    assert "playlist" in by_name["stream.mp4"].detail
    assert video.video is None and not video._dock.isVisible()  # no panel for a bad file
    shot(window, "video-7-bad-files.png")

    # The app keeps running: a good clip still opens, and the chat still answers.
    open_clip(qtbot, window, video, write_clip(tmp_path / "good.avi"))
    chips.clear()
    window.composer.set_text("Are you still there?")
    assert window.controller.send()
    qtbot.waitUntil(lambda: not window.controller.generating, timeout=10_000)
    messages = window._store.messages(window.controller.session_id)
    assert (messages[-1].role, messages[-1].text) == (Role.ASSISTANT, "Still here.")
