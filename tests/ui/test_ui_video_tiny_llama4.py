"""The video panel on the real Llama 4 engine (tiny random model): every frame, clip, summary."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from app.core.messages import AttachmentKind, Role, StopReason
from app.core.settings import Settings
from app.core.video.run import load_video_run
from app.ui.shell.application import default_engine_factory
from tests.helpers.video_clips import write_clip
from tests.helpers.video_ui import QUESTION, open_clip, sample, video_window

pytestmark = pytest.mark.slow


def test_the_real_engine_answers_every_frame_then_the_clip_then_a_summary(
    qtbot, open_window, tiny_model, tmp_path
):
    settings = Settings(model_dir=str(tiny_model), quantization="bf16", max_new_tokens=6)
    window, video = video_window(
        open_window, settings=settings, factory=default_engine_factory, requires_model_dir=True
    )
    open_clip(qtbot, window, video, write_clip(tmp_path / "clip.avi"))
    assert sample(qtbot, video, "count", 3) == 3

    # Every frame: the real `answer_frames` on the worker thread, three frames in one batch.
    video.panel.question_edit.setText(QUESTION)
    with qtbot.waitSignal(video.ask_finished, timeout=240_000) as blocker:
        qtbot.mouseClick(video.panel.frames_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["frames", "done"]
    assert all(f.answer is not None for f in video.frames)
    session_id = window.controller.session_id
    run = load_video_run(window._store.messages(session_id))
    assert [r.index for r in run.results] == [0, 1, 2]
    assert all(r.stop_reason in (StopReason.EOS, StopReason.LENGTH) for r in run.results)

    # The clip as a whole: one prompt with the three frames.
    video.panel.question_edit.setText("What happens in this clip?")
    with qtbot.waitSignal(video.ask_finished, timeout=240_000) as blocker:
        qtbot.mouseClick(video.panel.clip_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["clip", "done"]
    messages = window._store.messages(session_id)
    clip_question, clip_answer = messages[-2:]
    images = [a for a in clip_question.attachments if a.kind is AttachmentKind.IMAGE]
    assert len(images) == 3
    assert clip_answer.role is Role.ASSISTANT
    assert clip_answer.stop_reason in (StopReason.EOS, StopReason.LENGTH)
    assert clip_answer.timings is not None and clip_answer.timings.completion_tokens <= 6

    # A summary needs the per-frame run to be the chat's latest question: ask it again first.
    video.panel.question_edit.setText(QUESTION)
    with qtbot.waitSignal(video.ask_finished, timeout=240_000):
        qtbot.mouseClick(video.panel.frames_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(video.ask_finished, timeout=240_000) as blocker:
        qtbot.mouseClick(video.panel.summary_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["summary", "done"]
    summary = window._store.messages(session_id)[-1]
    assert summary.text.startswith("**Summary** — ")
    assert load_video_run(window._store.messages(session_id)).summary is not None
