"""A video run saved in a chat comes back on the timeline: switching chats and restarting."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.core.messages import StopReason
from tests.helpers.video_clips import write_clip
from tests.helpers.video_ui import QUESTION, FakeAnswers, open_clip, sample, video_window


def _answered_run(qtbot, window, video, tmp_path, frames: int = 4) -> str:
    video.answer_frames = FakeAnswers()
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    sample(qtbot, video, "count", frames)
    video.panel.question_edit.setText(QUESTION)
    with qtbot.waitSignal(video.ask_finished, timeout=5000):
        qtbot.mouseClick(video.panel.frames_button, Qt.MouseButton.LeftButton)
    session_id = window.controller.session_id
    assert session_id is not None
    return session_id


def _snapshot(video) -> list[tuple[float, str | None, tuple]]:
    return [(round(f.time_s, 3), f.answer, f.boxes) for f in video.frames]


def test_switching_chats_clears_the_run_and_coming_back_restores_it(qtbot, open_window, tmp_path):
    window, video = video_window(open_window)
    session_id = _answered_run(qtbot, window, video, tmp_path)
    before = _snapshot(video)

    window.controller.new_chat()  # another chat: its panel has no run
    assert video.frames == [] and video.video is None

    with qtbot.waitSignal(video.run_restored, timeout=5000):
        window.sidebar.select_session(session_id)
        window.controller.open_session(session_id)
    assert _snapshot(video) == before
    assert video.panel.question_edit.text() == QUESTION
    assert video.panel.status_label.text() == "Saved run: 4 of 4 frames answered."
    # Thumbnails are made again from the stored frames, off the GUI thread.
    qtbot.waitUntil(lambda: all(not f.thumb.isNull() for f in video.frames), timeout=10_000)
    assert video.panel.timeline.duration() == 4.0
    qtbot.waitUntil(lambda: video.panel.timeline.strip_size() == 12, timeout=20_000)
    assert video.show_frame(1)
    assert [b.label for _i, b in video.panel.preview.boxes()] == ["square"]


def test_a_restarted_app_restores_the_timeline_of_the_chat_it_opens(qtbot, open_window, tmp_path):
    window, video = video_window(open_window)
    session_id = _answered_run(qtbot, window, video, tmp_path, frames=3)
    before = _snapshot(video)
    window.close()

    again, video_again = video_window(open_window)
    assert video_again.video is None
    with qtbot.waitSignal(video_again.run_restored, timeout=5000):
        again.controller.open_session(session_id)
    assert _snapshot(video_again) == before
    assert video_again.run is not None and len(video_again.run.results) == 3
    assert all(f.stop_reason is StopReason.EOS for f in video_again.frames)
    # The summary and the exports work on a restored run.
    assert video_again.panel.summary_button.isEnabled()
    assert video_again.panel.export_button.isEnabled()


def test_a_stopped_run_comes_back_with_its_unanswered_frames(qtbot, open_window, tmp_path):
    window, video = video_window(open_window)
    fake = FakeAnswers(gated=True)
    video.answer_frames = fake
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    sample(qtbot, video, "count", 4)
    video.panel.question_edit.setText(QUESTION)
    qtbot.mouseClick(video.panel.frames_button, Qt.MouseButton.LeftButton)
    fake.release()
    qtbot.waitUntil(lambda: video.frames[0].answer is not None, timeout=5000)
    with qtbot.waitSignal(video.ask_finished, timeout=5000):
        video.cancel()
    session_id = window.controller.session_id

    window.controller.new_chat()
    with qtbot.waitSignal(video.run_restored, timeout=5000):
        window.controller.open_session(session_id)
    assert [f.answer is not None for f in video.frames] == [True, False, False, False]
    assert video.panel.status_label.text() == "Saved run: 1 of 4 frames answered."


def test_clicking_the_video_of_an_earlier_question_reopens_its_run(qtbot, open_window, tmp_path):
    window, video = video_window(open_window)
    _answered_run(qtbot, window, video, tmp_path, frames=2)
    question = window.chat_view.messages()[0]
    clip = question.attachments[0]
    video.clear()
    with qtbot.waitSignal(video.run_restored, timeout=5000):
        window.chat_view.attachment_activated.emit(clip)
    assert len(video.frames) == 2 and all(f.answer for f in video.frames)
