"""Asking from the video panel: every frame, the clip, a summary; Cancel; saved as the CLI does."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QPoint, Qt

from app.core.messages import AttachmentKind, AttachmentStatus, Role, StopReason
from app.core.video.run import load_video_run
from app.inference.engine import BadInputError
from app.inference.frames import FAST_MAX_PATCHES
from app.ui.video.asking import BUSY
from app.ui.video.controller import VideoController
from tests.helpers.video_clips import write_clip
from tests.helpers.video_ui import (
    QUESTION,
    FakeAnswers,
    open_clip,
    sample,
    shot,
    video_window,
)

CLIP_ANSWER = "The square slides from left to right, and the background turns blue at 00:02.500."
SUMMARY = "Across the clip the square moves steadily to the right."


def _ask_frames(qtbot, video: VideoController, question: str = QUESTION) -> None:
    video.panel.question_edit.setText(question)
    qtbot.mouseClick(video.panel.frames_button, Qt.MouseButton.LeftButton)


def _messages(window):
    return window._store.messages(window.controller.session_id)


def test_answers_fill_the_timeline_as_they_come_and_are_saved_like_the_cli(
    qtbot, open_window, tmp_path
):
    window, video = video_window(open_window)
    window.resize(1280, 820)
    fake = FakeAnswers(gated=True)
    video.answer_frames = fake
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    assert sample(qtbot, video, "count", 4) == 4
    _ask_frames(qtbot, video)

    # The question is committed at once: the video and its four frames, all used.
    qtbot.waitUntil(lambda: window.controller.session_id is not None, timeout=5000)
    [question] = _messages(window)
    assert question.text == QUESTION
    kinds = [(a.kind, a.status) for a in question.attachments]
    assert kinds == [(AttachmentKind.VIDEO, AttachmentStatus.USED)] + 4 * [
        (AttachmentKind.IMAGE, AttachmentStatus.USED)
    ]
    assert [f.waiting for f in video.frames] == [True] * 4
    assert video.panel.cancel_button.isVisible()

    # One answer arrives: on the timeline, in the list, in the store and in the chat.
    fake.release()
    qtbot.waitUntil(lambda: video.frames[0].answer is not None, timeout=5000)
    first = video.frames[0]
    assert first.answer.startswith("The square is")
    assert [b.label for b in first.boxes] == ["square"]
    assert [f.waiting for f in video.frames] == [False, True, True, True]
    assert video.panel.progress_label.text() == "Frame 1 of 4"
    assert video.panel.progress_bar.value() == 1 and video.panel.progress_bar.maximum() == 4
    messages = _messages(window)
    assert messages[-1].role is Role.ASSISTANT
    assert messages[-1].text.startswith(f"**{'00:00.'}")
    assert messages[-1].boxes == first.boxes
    assert window.chat_view.message_ids()[-1] == messages[-1].id
    shot(window, "video-3-answering.png")

    with qtbot.waitSignal(video.ask_finished, timeout=5000) as blocker:
        fake.release(3)
    assert blocker.args == ["frames", "done"]
    assert not video.panel.cancel_button.isVisible()
    assert video.panel.status_label.text() == "All 4 frames answered."
    run = load_video_run(_messages(window))
    assert run is not None and run.question == QUESTION
    assert [r.index for r in run.results] == [0, 1, 2, 3]
    assert all(len(r.boxes) == 1 and r.stop_reason is StopReason.EOS for r in run.results)
    assert [f.answer for f in video.frames] == [r.answer for r in run.results]
    assert fake.calls[0]["batch_size"] == 4 and fake.calls[0]["max_patches"] is None
    assert len(window.chat_view.message_ids()) == 5
    shot(window, "video-4-answered.png")
    shot(window, "video-4-answered-dark.png", theme="dark")


def test_cancel_stops_the_frame_by_frame_answers_and_keeps_those_given(
    qtbot, open_window, tmp_path
):
    window, video = video_window(open_window)
    fake = FakeAnswers(gated=True)
    video.answer_frames = fake
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    sample(qtbot, video, "count", 5)
    _ask_frames(qtbot, video)
    fake.release(2)
    qtbot.waitUntil(lambda: video.frames[1].answer is not None, timeout=5000)

    with qtbot.waitSignal(video.ask_finished, timeout=5000) as blocker:
        qtbot.mouseClick(video.panel.cancel_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["frames", "cancelled"]
    assert [f.answer is not None for f in video.frames] == [True, True, False, False, False]
    assert not any(f.waiting for f in video.frames)
    assert video.panel.status_label.text() == "Stopped: 2 of 5 frames answered."
    run = load_video_run(_messages(window))
    assert [r.index for r in run.results] == [0, 1]
    assert len(run.frames) == 5  # the unanswered frames stay on the timeline
    # The panel is usable again: a second pass answers every frame.
    fake.gated = False
    with qtbot.waitSignal(video.ask_finished, timeout=5000):
        _ask_frames(qtbot, video)
    assert all(f.answer is not None for f in video.frames)


def test_the_faster_option_asks_for_fewer_tiles(qtbot, open_window, tmp_path):
    window, video = video_window(open_window)
    video.answer_frames = fake = FakeAnswers()
    video.batch_size = 2
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    video.panel.fast_check.setChecked(True)
    video.panel.set_sampling_choice("count", 3)
    with qtbot.waitSignal(video.ask_finished, timeout=20_000):
        _ask_frames(qtbot, video)  # nothing sampled yet: it samples first, then asks
    assert len(video.frames) == 3
    assert fake.calls == [
        {
            "batch_size": 2,
            "max_new_tokens": 256,
            "temperature": 0.6,
            "top_p": 0.9,
            "max_patches": FAST_MAX_PATCHES,
        }
    ]


def test_a_failing_pass_says_why_and_keeps_the_question(qtbot, open_window, tmp_path):
    window, video = video_window(open_window)
    video.answer_frames = FakeAnswers(
        fail_with=BadInputError("clip.avi @ 00:00.500 is unreadable.")
    )
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    sample(qtbot, video, "count", 2)
    with qtbot.waitSignal(video.ask_finished, timeout=5000) as blocker:
        _ask_frames(qtbot, video)
    assert blocker.args == ["frames", "failed"]
    assert "clip.avi @ 00:00.500 is unreadable." in video.panel.status_label.text()
    assert video.panel.status_label.property("kind") == "error"
    assert [m.role for m in _messages(window)] == [Role.USER]


def test_the_chat_waits_while_scout_answers_about_the_video(qtbot, open_window, tmp_path):
    window, video = video_window(open_window)
    fake = FakeAnswers(gated=True)
    video.answer_frames = fake
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    sample(qtbot, video, "count", 2)
    _ask_frames(qtbot, video)
    qtbot.waitUntil(lambda: video.asking, timeout=5000)

    window.composer.set_text("And now something else?")
    assert not window.controller.send()
    assert window.composer.notice.text() == BUSY
    with qtbot.waitSignal(video.ask_finished, timeout=5000):
        fake.release(2)
    assert window.controller.send()


def test_asking_about_the_clip_sends_five_frames_with_their_times(qtbot, open_window, tmp_path):
    window, video = video_window(open_window, replies=[CLIP_ANSWER])
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    sample(qtbot, video, "count", 8)
    video.panel.question_edit.setText("What happens in this clip?")
    with qtbot.waitSignal(video.ask_finished, timeout=10_000) as blocker:
        qtbot.mouseClick(video.panel.clip_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["clip", "done"]

    [request] = window.engine.requests
    [turn] = request.turns
    assert len(turn.images) == 5  # Scout's tested image limit, spread over the 8 frames
    assert "What happens in this clip?" in turn.text
    assert "00:00." in turn.text and "00:03." in turn.text  # the frames' times are in the text
    question, answer = _messages(window)
    frames = [a for a in question.attachments if a.kind is AttachmentKind.IMAGE]
    assert all(a.name.startswith("clip.avi @ ") for a in frames)
    assert len(frames) == 5
    assert (answer.role, answer.text, answer.stop_reason) == (
        Role.ASSISTANT,
        CLIP_ANSWER,
        StopReason.EOS,
    )
    assert video.panel.answer_title.text() == "About the clip"
    assert video.panel.answer_text.toPlainText() == CLIP_ANSWER
    assert window.chat_view.message_ids() == [question.id, answer.id]


def test_a_summary_over_the_frame_answers_is_saved_after_them(qtbot, open_window, tmp_path):
    window, video = video_window(open_window, replies=[SUMMARY])
    video.answer_frames = FakeAnswers()
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    sample(qtbot, video, "count", 3)
    with qtbot.waitSignal(video.ask_finished, timeout=5000):
        _ask_frames(qtbot, video)
    assert video.panel.summary_button.isEnabled()

    with qtbot.waitSignal(video.ask_finished, timeout=10_000) as blocker:
        qtbot.mouseClick(video.panel.summary_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["summary", "done"]
    [request] = window.engine.requests
    prompt = request.turns[0].text
    assert QUESTION in prompt and "The square is" in prompt  # written from the frame answers
    messages = _messages(window)
    assert messages[-1].text == f"**Summary** — {SUMMARY}"
    run = load_video_run(messages)
    assert run.summary == SUMMARY and len(run.results) == 3
    assert video.panel.answer_text.toPlainText() == SUMMARY
    shot(video.panel, "video-5-summary.png")


def test_clicking_a_frame_shows_it_with_its_boxes(qtbot, open_window, tmp_path):
    window, video = video_window(open_window)
    video.answer_frames = FakeAnswers()
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    sample(qtbot, video, "count", 4)
    with qtbot.waitSignal(video.ask_finished, timeout=5000):
        _ask_frames(qtbot, video)

    timeline = video.panel.timeline
    target = video.frames[2]
    marker = QPoint(int(timeline.x_of(target.time_s)), 8)
    qtbot.mouseClick(timeline, Qt.MouseButton.LeftButton, pos=marker)
    assert video.selected == 2
    canvas = video.panel.preview
    assert [box for _i, box in canvas.boxes()] == [replace(b, image=0) for b in target.boxes]
    assert (canvas.image().width(), canvas.image().height()) == (160, 120)
    assert video.panel.time_label.text().startswith("Frame 3 of 4")
    assert video.panel.frame_list.currentIndex().row() == 2

    # A double click in the list opens the frame in the image viewer, boxes and all.
    list_view = video.panel.frame_list
    list_view.scrollTo(list_view.frame_model.index(1))
    rect = list_view.visualRect(list_view.frame_model.index(1))
    qtbot.mouseClick(list_view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert video.selected == 1
    rect = list_view.visualRect(list_view.frame_model.index(1))
    qtbot.mouseDClick(list_view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.image_dock.isVisible()
    assert [b.label for b in window.image_viewer.boxes] == ["square"]
    assert window.image_viewer.boxes[0].x1 == video.frames[1].boxes[0].x1
    shot(window, "video-6-frame-boxes.png")


def test_closing_the_window_mid_run_keeps_the_answers_given_and_joins_every_thread(
    qtbot, open_window, tmp_path
):
    window, video = video_window(open_window)
    fake = FakeAnswers(gated=True)
    video.answer_frames = fake
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    sample(qtbot, video, "count", 4)
    _ask_frames(qtbot, video)
    fake.release(2)
    qtbot.waitUntil(lambda: video.frames[1].answer is not None, timeout=5000)
    session_id = window.controller.session_id

    window.close()  # cancels the pass on the worker thread and joins it (the fixture checks)

    run = load_video_run(window._store.messages(session_id))
    assert [r.index for r in run.results] == [0, 1]
    assert not video.asking


def test_closing_mid_clip_answer_saves_what_was_written_as_cancelled(qtbot, open_window, tmp_path):
    long_answer = " ".join(f"word{i}" for i in range(400))
    window, video = video_window(open_window, replies=[long_answer], chunk_delay_s=0.01)
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    sample(qtbot, video, "count", 3)
    video.panel.question_edit.setText("What happens?")
    qtbot.mouseClick(video.panel.clip_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(video.panel.answer_text.toPlainText()) > 0, timeout=10_000)
    session_id = window.controller.session_id

    window.close()

    _question, answer = window._store.messages(session_id)
    assert answer.stop_reason is StopReason.CANCELLED
    assert answer.text and long_answer.startswith(answer.text.strip())
