"""The video controller's saved runs: restore a chat's run on the timeline, open attached clips."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QImage

from app.core.messages import Attachment, AttachmentKind, AttachmentStatus, Message, Role
from app.store.db import StoreError
from app.store.sessions import SessionStore
from app.ui.ports import ChatPort
from app.ui.transcript.view import ChatView
from app.ui.video.panel import VideoPanel
from app.ui.video.timeline import TimelineFrame

if TYPE_CHECKING:
    from app.core.video.data import VideoInfo
    from app.core.video.run import VideoRun


class VideoRuns:
    """Mixed into `VideoController`: a run saved in a chat comes back when the chat is opened."""

    # Provided by VideoController.
    _store: SessionStore
    _chat: ChatPort
    _view: ChatView
    panel: VideoPanel
    _frames: list[TimelineFrame]
    _images: list[Attachment]
    _run: VideoRun | None
    _run_session: str | None
    _closed: bool
    _opening_own_session: bool
    message_posted: Signal
    run_restored: Signal

    if TYPE_CHECKING:  # provided by VideoController and VideoAsking

        @property
        def asking(self) -> bool: ...
        def open_video(self, attachment: Attachment) -> bool: ...
        def clear(self) -> None: ...
        def _show_clip(self, video: Attachment, info: VideoInfo | None) -> None: ...
        def _present(self) -> None: ...
        def _on_task_failed(self, sentence: str) -> None: ...
        def _start(
            self, slot: str, work: Callable[[Callable[[], bool]], Any],
            done: Callable[[Any], None], failed: Callable[[str], None],
        ) -> None: ...  # fmt: skip

    def restore(self, session_id: str, question_id: str | None = None) -> bool:
        """Show a session's saved run (its latest, or the one asked by `question_id`).

        Returns:
            True when the session holds a run and the panel shows it.
        """
        from app.core.video.run import load_video_run

        try:
            messages = self._store.messages(session_id)
        except StoreError as exc:
            self.message_posted.emit(exc.message)
            return False
        index = next((i for i, m in enumerate(messages) if m.id == question_id), None)
        run = load_video_run(messages, index)
        if run is None:
            return False
        self.show_run(run, session_id, clip_answer(messages, run))
        self.run_restored.emit(session_id)
        return True

    def show_run(self, run: VideoRun, session_id: str, clip_text: str = "") -> None:
        """Put a saved run on the timeline: its frames, answers, boxes and summary."""
        self._show_clip(run.video, run.info)
        self._run, self._run_session = run, session_id
        self._frames = [
            TimelineFrame(
                f.time_s,
                answer=f.result.answer if f.result else None,
                boxes=f.result.boxes if f.result else (),
                stop_reason=f.result.stop_reason if f.result else None,
            )
            for f in run.frames
        ]
        self._images = [f.image for f in run.frames]
        if run.info is None and run.frames:
            self.panel.timeline.set_duration(run.frames[-1].time_s * 1.05 + 0.1)
        self.panel.set_frames(self._frames)
        self.panel.question_edit.setText(run.question)
        if run.summary is not None:
            self.panel.set_answer("Summary", run.summary)
        elif clip_text:
            self.panel.set_answer("About the clip", clip_text)
        answered = len(run.results)
        self.panel.set_status(f"Saved run: {answered} of {len(run.frames)} frames answered.")
        self._make_thumbs()
        self._present()

    def _make_thumbs(self) -> None:
        from app.core.video.sampling import thumbnail

        paths = [self._store.blobs.path(a.sha256 or "") for a in self._images]
        frames = self._frames

        def work(cancelled: Callable[[], bool]) -> list[QImage]:
            images = []
            for path in paths:
                if cancelled():
                    break
                try:
                    images.append(QImage.fromData(thumbnail(path)))
                except OSError:
                    images.append(QImage())  # a missing blob: the row shows no picture
            return images

        def done(images: list[QImage]) -> None:
            if frames is not self._frames:
                return  # another clip or sampling replaced them
            for position, image in enumerate(images):
                frames[position].thumb = image
                self.panel.frame_changed(position)

        self._start("thumbs", work, done, self._on_task_failed)

    # -- wiring ------------------------------------------------------------------------------

    def on_chat_session_opened(self, session_id: str | None) -> None:
        """Another chat is shown: its saved run (if any) comes back on the timeline."""
        if self._closed or self.asking or self._opening_own_session:
            return
        if session_id is not None and session_id == self._run_session:
            return
        restored = session_id is not None and self.restore(session_id)
        if not restored and self._run is not None:
            self.clear()  # the run shown belongs to another chat; a clip not asked about stays

    def on_ingest_finished(self, _job_id: int, attachments: Sequence[Attachment]) -> None:
        """Open a dropped or attached video in the panel (the last one, when several came)."""
        videos = [
            a for a in attachments
            if a.kind is AttachmentKind.VIDEO and a.status is AttachmentStatus.READY
        ]  # fmt: skip
        if videos:
            self.open_video(videos[-1])

    def on_attachment_activated(self, attachment: Attachment | None) -> None:
        """A video clicked in the composer or the chat opens in the panel (with its run)."""
        if attachment is None or attachment.kind is not AttachmentKind.VIDEO:
            return
        question = next((m for m in self._view.messages() if attachment in m.attachments), None)
        session_id = self._chat.session_id
        restorable = question is not None and session_id is not None and not self.asking
        if restorable and self.restore(session_id or "", question.id if question else None):
            return
        self.open_video(replace(attachment, status=AttachmentStatus.READY))


def clip_answer(messages: Sequence[Message], run: VideoRun) -> str:
    """The answer to a clip question (the first reply after it that is not a frame's answer)."""
    ids = [m.id for m in messages]
    if run.question_id not in ids or run.results:
        return ""
    for message in messages[ids.index(run.question_id) + 1 :]:
        if message.role is Role.USER:
            break
        if not message.text.startswith("**"):
            return message.text
    return ""
