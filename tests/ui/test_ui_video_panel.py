"""The video panel in the real window: open a clip, its facts and strip, scrubbing, sampling.

Other video UI tests import the helpers at the top of this file.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt

from app.core.messages import AttachmentKind
from tests.helpers.video_clips import CUT_FRAME, FPS, STEP, write_clip
from tests.helpers.video_ui import (
    QUESTION,
    open_clip,
    sample,
    shot,
    square_left,
    video_window,
)


def test_dropping_a_clip_opens_the_panel_with_its_facts_strip_and_first_frame(
    qtbot, open_window, tmp_path
):
    window, video = video_window(open_window)
    window.resize(1280, 820)
    clip = write_clip(tmp_path / "forklift.avi")
    open_clip(qtbot, window, video, clip)

    panel = video.panel
    assert window.findChild(type(video.panel)).isVisible()
    assert panel.name_label.text() == "forklift.avi"
    assert panel.facts_label.text() == "4.0 s · 10 fps · 160×120 · 40 frames"
    assert panel.timeline.strip_size() == 12
    assert panel.timeline.duration() == 4.0
    qtbot.waitUntil(lambda: not panel.preview.image().isNull(), timeout=20_000)
    assert (panel.preview.image().width(), panel.preview.image().height()) == (160, 120)
    # Nothing is sampled or asked yet: the asks wait for a question.
    assert panel.frame_list.frame_model.rowCount() == 0
    assert not panel.frames_button.isEnabled()
    qtbot.keyClicks(panel.question_edit, QUESTION)
    assert panel.frames_button.isEnabled() and panel.clip_button.isEnabled()
    assert not panel.summary_button.isEnabled()
    shot(window, "video-1-opened.png")


def test_scrubbing_the_timeline_previews_the_frame_under_the_playhead(qtbot, open_window, tmp_path):
    window, video = video_window(open_window)
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    timeline = video.panel.timeline
    qtbot.waitUntil(lambda: not video.panel.preview.image().isNull(), timeout=20_000)

    # Drag across the strip: only where the pointer rests is decoded (the preview is debounced).
    y = timeline.strip_rect().center().y()
    with qtbot.waitSignal(video.preview_shown, timeout=20_000) as blocker:
        qtbot.mousePress(
            timeline, Qt.MouseButton.LeftButton, pos=QPoint(int(timeline.x_of(0.5)), y)
        )
        for t in (1.0, 1.5, 2.0):
            qtbot.mouseMove(timeline, QPoint(int(timeline.x_of(t)), y))
        qtbot.mouseRelease(
            timeline, Qt.MouseButton.LeftButton, pos=QPoint(int(timeline.x_of(2.0)), y)
        )
    shown = blocker.args[0]
    assert abs(shown - 2.0) <= 0.15
    assert abs(timeline.position() - 2.0) <= 0.05
    frame = round(shown * FPS)
    assert abs(square_left(video.panel.preview.image()) - STEP * frame) <= 2
    assert "00:02" in video.panel.time_label.text()

    # The keyboard steps the playhead by a second.
    timeline.setFocus()
    with qtbot.waitSignal(video.preview_shown, timeout=20_000) as blocker:
        qtbot.keyClick(timeline, Qt.Key.Key_Left)
    assert abs(blocker.args[0] - 1.0) <= 0.15


def test_each_sampling_mode_puts_its_frames_on_the_timeline(qtbot, open_window, tmp_path):
    window, video = video_window(open_window)
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))

    assert sample(qtbot, video, "count", 8) == 8
    # The middles of eight equal parts of 4 s, each to the nearest decoded frame (0.1 s apart).
    planned = [(i + 0.5) * 0.5 for i in range(8)]
    assert all(abs(f.time_s - t) <= 0.1 for f, t in zip(video.frames, planned, strict=True))
    assert all(not f.thumb.isNull() for f in video.frames)
    assert video.panel.frame_list.frame_model.rowCount() == 8
    assert "8 frames sampled" in video.panel.status_label.text()

    video.panel.every_spin.setValue(1.0)
    assert sample(qtbot, video, "every") == 4
    assert [f.time_s for f in video.frames] == [0.0, 1.0, 2.0, 3.0]

    assert sample(qtbot, video, "scenes") == 2
    assert [f.time_s for f in video.frames] == [0.0, CUT_FRAME / FPS]
    # Every sampled frame is a stored image named after its time in the clip.
    assert [a.name for a in video._clip.images] == ["clip.avi @ 00:00.000", "clip.avi @ 00:02.500"]
    shot(video.panel, "video-2-sampled.png")


def test_cancel_stops_sampling_and_leaves_the_controls_usable(qtbot, open_window, tmp_path):
    window, video = video_window(open_window)
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    video.panel.set_sampling_choice("count", 40)

    with qtbot.waitSignal(video.sampling_finished, timeout=5000) as blocker:
        assert video.sample()
        assert video.panel.cancel_button.isVisible()
        assert not video.panel.sample_button.isEnabled()
        qtbot.mouseClick(video.panel.cancel_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [0]
    assert not video.is_sampling()
    assert video.frames == []
    assert video.panel.sample_button.isEnabled()
    assert video.panel.status_label.text() == "Sampling cancelled."
    # It samples again afterwards.
    assert sample(qtbot, video, "count", 3) == 3


def test_a_clip_named_on_the_command_line_opens_in_the_panel(qtbot, open_window, tmp_path):
    window, video = video_window(open_window)
    clip = write_clip(tmp_path / "dock.mp4", "mp4v")
    with qtbot.waitSignal(video.video_opened, timeout=20_000):
        window.open_files([clip])
    assert video.panel.name_label.text() == "dock.mp4"
    qtbot.waitUntil(lambda: video.panel.timeline.strip_size() > 0, timeout=20_000)


def test_clicking_the_clips_chip_reopens_it_and_the_chat_menu_toggles_the_panel(
    qtbot, open_window, tmp_path
):
    window, video = video_window(open_window)
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    chip = window.composer.chips.chips()[0]  # the clip's own chip (its frames follow it)
    assert chip.attachment.kind is AttachmentKind.VIDEO
    video.clear()

    with qtbot.waitSignal(video.video_opened, timeout=5000):
        qtbot.mouseClick(chip, Qt.MouseButton.LeftButton)
    assert video.video is not None and video.video.name == "clip.avi"
    assert window.show_attachment(chip.attachment) is None  # no preview dialog for a video

    toggle = next(
        a for m in window.menuBar().actions() if m.menu() is not None
        for a in m.menu().actions() if a.text() == "&Video panel"
    )  # fmt: skip
    dock = video.panel.parentWidget()
    assert toggle.isChecked() and dock.isVisible()
    toggle.trigger()
    assert not dock.isVisible()
