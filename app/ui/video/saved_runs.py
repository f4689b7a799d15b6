"""Saved video runs: a chat's run back on the timeline, and clips opened from the chat."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6.QtGui import QImage

from app.core.messages import Attachment, AttachmentKind, AttachmentStatus, Message, Role
from app.store.db import StoreError
from app.store.sessions import SessionStore
from app.ui.ports import ChatPort
from app.ui.transcript.view import ChatView
from app.ui.video.clip_state import ClipState, TaskSlots
from app.ui.video.panel import VideoPanel
from app.ui.video.timeline import TimelineFrame

if TYPE_CHECKING:
    from app.core.video.data import VideoInfo
    from app.core.video.run import VideoRun


class SavedRuns:
    """A run saved in a chat comes back on the timeline when the chat or its clip is opened.

    Args:
        store: the session store.
        chat: the chat (which chat is shown).
        view: the transcript (which message a clicked clip belongs to).
        panel: the panel's widgets.
        clip: the clip shown (shared with the other video components).
        tasks: the clip's background work (the frames' thumbnails are made there).
        show_clip: shows a clip with nothing sampled (cancelling the clip's work first).
        open_video: opens a clip in the panel as a new clip; False when it cannot.
        clear: shows no clip.
        present: raises the panel's dock.
        asking: whether a question about the clip is being answered.
        post: shows a sentence in the status bar.
        restored: told the session whose saved run the panel now shows.
    """

    def __init__(
        self,
        *,
        store: SessionStore,
        chat: ChatPort,
        view: ChatView,
        panel: VideoPanel,
        clip: ClipState,
        tasks: TaskSlots,
        show_clip: Callable[[Attachment, VideoInfo | None], None],
        open_video: Callable[[Attachment], bool],
        clear: Callable[[], None],
        present: Callable[[], None],
        asking: Callable[[], bool],
        post: Callable[[str], None],
        restored: Callable[[str], None],
    ) -> None:
        self._store = store
        self._chat = chat
        self._view = view
        self._panel = panel
        self._clip = clip
        self._tasks = tasks
        self._show_clip = show_clip
        self._open_video = open_video
        self._clear = clear
        self._present = present
        self._asking = asking
        self._post = post
        self._restored = restored

    def restore(self, session_id: str, question_id: str | None = None) -> bool:
        """Show a session's saved run (its latest, or the one asked by `question_id`).

        Returns:
            True when the session holds a run and the panel shows it.
        """
        from app.core.video.run import load_video_run

        try:
            messages = self._store.messages(session_id)
        except StoreError as exc:
            self._post(exc.message)
            return False
        index = next((i for i, m in enumerate(messages) if m.id == question_id), None)
        run = load_video_run(messages, index)
        if run is None:
            return False
        self.show_run(run, session_id, clip_answer(messages, run))
        self._restored(session_id)
        return True

    def show_run(self, run: VideoRun, session_id: str, clip_text: str = "") -> None:
        """Put a saved run on the timeline: its frames, answers, boxes and summary."""
        self._show_clip(run.video, run.info)
        self._clip.run, self._clip.run_session = run, session_id
        self._clip.frames = [
            TimelineFrame(
                f.time_s,
                answer=f.result.answer if f.result else None,
                boxes=f.result.boxes if f.result else (),
                stop_reason=f.result.stop_reason if f.result else None,
            )
            for f in run.frames
        ]
        self._clip.images = [f.image for f in run.frames]
        if run.info is None and run.frames:
            self._panel.timeline.set_duration(run.frames[-1].time_s * 1.05 + 0.1)
        self._panel.set_frames(self._clip.frames)
        self._panel.question_edit.setText(run.question)
        if run.summary is not None:
            self._panel.set_answer("Summary", run.summary)
        elif clip_text:
            self._panel.set_answer("About the clip", clip_text)
        answered = len(run.results)
        self._panel.set_status(f"Saved run: {answered} of {len(run.frames)} frames answered.")
        self._make_thumbs()
        self._present()

    # -- following the chat ------------------------------------------------------------------

    def follow_chat(self, session_id: str | None) -> None:
        """Another chat is shown: its saved run (if any) comes back on the timeline."""
        if session_id is not None and session_id == self._clip.run_session:
            return
        restored = session_id is not None and self.restore(session_id)
        if not restored and self._clip.run is not None:
            self._clear()  # the run shown belongs to another chat; a clip not asked about stays

    def open_attachment(self, attachment: Attachment | None) -> None:
        """A video clicked in the composer or the chat opens in the panel (with its run)."""
        if attachment is None or attachment.kind is not AttachmentKind.VIDEO:
            return
        question = next((m for m in self._view.messages() if attachment in m.attachments), None)
        session_id = self._chat.session_id
        restorable = question is not None and session_id is not None and not self._asking()
        if restorable and self.restore(session_id or "", question.id if question else None):
            return
        self._open_video(replace(attachment, status=AttachmentStatus.READY))

    # -- internals ---------------------------------------------------------------------------

    def _make_thumbs(self) -> None:
        from app.core.video.sampling import thumbnail

        paths = [self._store.blobs.path(a.sha256 or "") for a in self._clip.images]
        frames = self._clip.frames

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
            if frames is not self._clip.frames:
                return  # another clip or sampling replaced them
            for position, image in enumerate(images):
                frames[position].thumb = image
                self._panel.frame_changed(position)

        self._tasks.start("thumbs", work, done, self._on_thumbs_failed)

    def _on_thumbs_failed(self, sentence: str) -> None:
        self._panel.set_status(sentence, error=True)


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
