"""The video controller's three asks: every frame, the clip as a whole, and a summary.

Each ask commits its question the way `scout-desk video` does (the video and its frames as
USED attachments of one user message), runs as one job on the inference worker, and saves
every answer as it arrives with the core's save functions, so the chat shows it and reopening
the chat rebuilds the timeline.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal

from app.conversation.pipeline import Conversation
from app.conversation.video_questions import (
    FRAME_TOKENS,
    SUMMARY_TOKENS,
    AnswerFrames,
    Decoding,
    clip_job,
    frames_job,
    summary_job,
)
from app.core.messages import (
    Attachment,
    Message,
    Role,
    StopReason,
    Timings,
)
from app.core.settings import Settings
from app.inference.engine import JobFunction
from app.store.db import StoreError
from app.store.sessions import SessionStore
from app.ui.ports import ChatPort
from app.ui.tasks.inference_worker import InferenceWorker
from app.ui.transcript.view import ChatView
from app.ui.video.panel import VideoPanel
from app.ui.video.timeline import TimelineFrame

if TYPE_CHECKING:
    from app.core.video.data import FrameResult, VideoInfo
    from app.core.video.run import VideoRun

BUSY = "Scout is still answering about the video: wait, or press Cancel in the video panel."


@dataclass
class _Ask:
    """The question being answered."""

    id: str
    kind: str  # "frames", "clip" or "summary"
    session_id: str
    question: Message
    worker: InferenceWorker  # held so its queued signals still arrive after a restart
    total: int = 0
    done: int = 0
    parts: list[str] = field(default_factory=list)


class VideoAsking:
    """Mixed into `VideoController`: asks Scout about the clip and saves what comes back."""

    # Provided by VideoController.
    _store: SessionStore
    _chat: ChatPort
    _view: ChatView
    panel: VideoPanel
    _settings: Callable[[], Settings]
    _video: Attachment | None
    _info: VideoInfo | None
    _frames: list[TimelineFrame]
    _images: list[Attachment]
    _run: VideoRun | None
    _run_session: str | None
    _selected: int | None
    _after_sampling: Callable[[], object] | None
    answer_frames: AnswerFrames
    batch_size: int
    message_posted: Signal
    ask_finished: Signal

    def _init_asking(self) -> None:
        self._ask: _Ask | None = None
        self._opening_own_session = False
        self._connected: InferenceWorker | None = None

    if TYPE_CHECKING:  # provided by VideoController

        def sample(self) -> bool: ...
        def show_frame(self, position: int) -> bool: ...
        def is_sampling(self) -> bool: ...

    @property
    def asking(self) -> bool:
        """Whether a question about the clip is being answered."""
        return self._ask is not None

    def busy_refusal(self) -> str | None:
        """Why the chat must wait (a video question is being answered), or None."""
        return BUSY if self._ask is not None else None

    # -- the three asks ----------------------------------------------------------------------

    def ask_frames(self, question: str) -> bool:
        """Ask `question` about every sampled frame (sampling first if nothing is sampled).

        Returns:
            True when the question was saved and the answers started (or sampling did).
        """
        if not self._can_ask(question):
            return False
        if not self._frames:
            self._after_sampling = lambda: self.ask_frames(question)
            return self.sample()
        assert self._video is not None
        saved = self._save_question(question.strip(), [self._video, *self._images])
        if saved is None:
            return False
        session_id, user = saved
        from app.core.video.attachments import frame_refs

        refs = frame_refs(user.attachments, self._store.blobs.path)
        max_patches = None
        if self.panel.faster():
            from app.inference.frames import FAST_MAX_PATCHES

            max_patches = FAST_MAX_PATCHES
        # The answer-length setting caps each frame's answer too (256 tokens at most).
        tokens = min(self._settings().max_new_tokens, FRAME_TOKENS)
        job = frames_job(
            self.answer_frames, question.strip(), refs, self._video.name, self._decoding(),
            batch_size=self.batch_size, max_patches=max_patches, max_new_tokens=tokens,
        )  # fmt: skip
        for frame in self._frames:
            frame.answer, frame.boxes, frame.stop_reason, frame.waiting = None, (), None, True
        self._run, self._run_session = None, session_id
        self.panel.set_frames(self._frames)
        self.panel.set_answer("", "")
        return self._start_ask("frames", session_id, user, job, len(refs))

    def ask_clip(self, question: str) -> bool:
        """Ask `question` once about the clip: up to five sampled frames in one prompt.

        Returns:
            True when the question was saved and the answer started (or sampling did).
        """
        if not self._can_ask(question):
            return False
        if not self._frames:
            self._after_sampling = lambda: self.ask_clip(question)
            return self.sample()
        assert self._video is not None
        from app.core.video.attachments import frame_refs
        from app.inference.frames import pick_clip_frames

        chosen = pick_clip_frames(list(range(len(self._images))))  # type: ignore[arg-type]
        images = [self._images[i] for i in chosen]  # type: ignore[index]
        saved = self._save_question(question.strip(), [self._video, *images])
        if saved is None:
            return False
        session_id, user = saved
        refs = frame_refs(user.attachments, self._store.blobs.path)
        duration = self._info.duration_s if self._info else 0.0
        settings = self._settings()
        job = clip_job(question.strip(), refs, self._video.name, duration, self._decoding(),
                       settings.max_new_tokens)  # fmt: skip
        self.panel.set_answer("About the clip", "")
        return self._start_ask("clip", session_id, user, job, 0)

    def summarize(self) -> bool:
        """Summarise the per-frame answers of the run shown (saved after its answers).

        Returns:
            True when the summary started.
        """
        run, session_id = self._run, self._run_session
        refusal = self._refusal()
        if refusal is None and (run is None or session_id is None or not run.results):
            refusal = "Ask every frame first: the summary is written from their answers."
        if refusal is None and not self._is_latest_question(session_id or "", run):
            refusal = "This run is not the chat's latest question; ask every frame again first."
        if refusal is not None or run is None or session_id is None:
            self.panel.set_status(refusal or "", error=True)
            return False
        duration = run.info.duration_s if run.info else 0.0
        tokens = min(self._settings().max_new_tokens, SUMMARY_TOKENS)
        job = summary_job(run.question, run.results, run.video.name, duration, self._decoding(),
                          tokens)  # fmt: skip
        question = Message(run.question_id, session_id, Role.USER, run.question, time.time())
        self.panel.set_answer("Summary", "")
        return self._start_ask("summary", session_id, question, job, 0)

    def cancel_ask(self) -> None:
        """Stop the question being answered (what was answered is kept)."""
        if self._ask is not None:
            self._ask.worker.cancel()
            self.panel.set_progress(self._ask.done, self._ask.total, "Stopping…")

    def shutdown_asking(self) -> None:
        """Cancel a running question and save what it has (the window is closing)."""
        ask, self._ask = self._ask, None
        if ask is None:
            return
        ask.worker.cancel()
        text = "".join(ask.parts)
        if ask.kind == "clip":
            self._save_reply(ask, text, StopReason.CANCELLED, None)
        elif ask.kind == "summary" and text:
            from app.core.video.run import save_summary

            with contextlib.suppress(StoreError):  # closing: no one left to tell
                save_summary(self._store, ask.session_id, text, StopReason.CANCELLED)

    # -- internals ---------------------------------------------------------------------------

    def _refusal(self) -> str | None:
        if self._ask is not None:
            return BUSY
        if self._video is None:
            return "Open a video first."
        return self._chat.refusal()

    def _can_ask(self, question: str) -> bool:
        refusal = self._refusal()
        if refusal is None and not question.strip():
            refusal = "Type a question about the video first."
        if refusal is None and self.is_sampling():
            refusal = "Frames are being sampled; ask again in a moment."
        if refusal is not None:
            self.panel.set_status(refusal, error=True)
            return False
        return True

    def _decoding(self) -> Decoding:
        settings = self._settings()
        return Decoding(settings.temperature, settings.top_p)

    def _is_latest_question(self, session_id: str, run: VideoRun | None) -> bool:
        try:
            messages = self._store.messages(session_id)
        except StoreError:
            return False
        users = [m for m in messages if m.role is Role.USER]
        return bool(users) and run is not None and users[-1].id == run.question_id

    def _save_question(
        self, text: str, attachments: Sequence[Attachment]
    ) -> tuple[str, Message] | None:
        """Commit the question to the chat shown (a new chat when none is)."""
        try:
            saved = Conversation(self._store).save_question(
                self._chat.session_id, text, attachments, used=True
            )
        except StoreError as exc:
            self.panel.set_status(f"Not asked: {exc.message}", error=True)
            return None
        session_id, user = saved.session_id, saved.message
        if session_id != self._chat.session_id:
            self._opening_own_session = True
            try:
                self._chat.open_session(session_id)  # shows the question just saved
            finally:
                self._opening_own_session = False
        else:
            self._view.add_message(user)
        self._chat.announce_sessions_changed()
        return session_id, user

    def _start_ask(
        self, kind: str, session_id: str, question: Message, job: JobFunction, total: int
    ) -> bool:
        worker = self._chat.engine()
        if worker is None:
            self.panel.set_status("The model is not available.", error=True)
            return False
        if worker is not self._connected:
            worker.job_progressed.connect(self._on_worker_job_progressed)
            worker.job_finished.connect(self._on_worker_job_finished)
            worker.job_failed.connect(self._on_worker_job_failed)
            self._connected = worker
        self._ask = _Ask(f"video-{kind}-{uuid.uuid4().hex[:12]}", kind, session_id, question,
                         worker, total)  # fmt: skip
        self.panel.set_busy("asking")
        self.panel.set_status("")
        waiting = {"frames": f"Asking about {total} frames…", "clip": "Asking about the clip…",
                   "summary": "Writing the summary…"}  # fmt: skip
        self.panel.set_progress(0, total, waiting[kind])
        worker.run_job(self._ask.id, job)
        return True

    def _on_worker_job_progressed(self, job_id: str, data: object) -> None:
        ask = self._ask
        if ask is None or job_id != ask.id:
            return
        if ask.kind != "frames":
            ask.parts.append(str(data))
            self.panel.append_answer(str(data))
            return
        self._on_frame_answered(ask, data)  # type: ignore[arg-type]

    def _on_frame_answered(self, ask: _Ask, result: FrameResult) -> None:
        from app.core.video.run import frame_answer_text, save_frame_answer

        try:
            message_id = save_frame_answer(self._store, ask.session_id, result)
        except StoreError as exc:
            self.message_posted.emit(f"A frame's answer could not be saved: {exc.message}")
            message_id = ""
        ask.done += 1
        if 0 <= result.index < len(self._frames):
            frame = self._frames[result.index]
            frame.answer, frame.boxes = result.answer, result.boxes
            frame.stop_reason, frame.waiting = result.stop_reason, False
            self.panel.frame_changed(result.index)
            if self._selected in (None, result.index):
                self.show_frame(result.index)  # the newest answer, unless one was picked
                if ask.done < ask.total:
                    self._selected = None  # keep following the answers as they come
        self.panel.set_progress(ask.done, ask.total, f"Frame {ask.done} of {ask.total}")
        if message_id and self._chat.session_id == ask.session_id:
            text = frame_answer_text(result.time_s, result.answer)
            self._view.add_message(Message(message_id, ask.session_id, Role.ASSISTANT, text,
                                           time.time(), stop_reason=result.stop_reason,
                                           boxes=result.boxes))  # fmt: skip

    def _on_worker_job_finished(self, job_id: str, result: object) -> None:
        ask = self._ask
        if ask is None or job_id != ask.id:
            return
        self._ask = None
        stopped = (
            result is None
            or getattr(result, "stop_reason", None) is StopReason.CANCELLED
            or (ask.kind == "frames" and ask.done < ask.total)
        )
        if ask.kind == "frames":
            self._end_frames(ask, "")
        else:
            reason = getattr(result, "stop_reason", StopReason.CANCELLED)
            timings = getattr(result, "timings", None)
            self._save_reply(ask, "".join(ask.parts), reason, timings)
            self._end_panel("Stopped." if stopped else "")
        self.ask_finished.emit(ask.kind, "cancelled" if stopped else "done")

    def _on_worker_job_failed(self, job_id: str, message: str) -> None:
        ask = self._ask
        if ask is None or job_id != ask.id:
            return
        self._ask = None
        sentence = f"The answer failed: {message}"
        if ask.kind == "frames":
            self._end_frames(ask, sentence)
        else:
            if ask.kind == "clip" or (ask.kind == "summary" and ask.parts):
                # What streamed before the failure is kept, marked as an error.
                self._save_reply(ask, "".join(ask.parts), StopReason.ERROR, None, message)
            self._end_panel(sentence, error=True)
        self.message_posted.emit(sentence)
        self.ask_finished.emit(ask.kind, "failed")

    def _end_frames(self, ask: _Ask, failure: str) -> None:
        from app.core.video.run import load_video_run

        for frame in self._frames:
            frame.waiting = False
        self.panel.set_frames(self._frames)
        if failure:
            note = failure
        elif ask.done < ask.total:
            note = f"Stopped: {ask.done} of {ask.total} frames answered."
        else:
            note = f"All {ask.total} frames answered."
        self._end_panel(note, error=bool(failure))
        try:
            messages = self._store.messages(ask.session_id)
        except StoreError:
            return
        index = next((i for i, m in enumerate(messages) if m.id == ask.question.id), None)
        self._run = load_video_run(messages, index) if index is not None else None
        self._chat.announce_sessions_changed()

    def _end_panel(self, note: str, error: bool = False) -> None:
        self.panel.hide_progress()
        self.panel.set_busy(None)
        self.panel.set_status(note, error=error)

    def _save_reply(
        self,
        ask: _Ask,
        text: str,
        reason: StopReason,
        timings: Timings | None,
        error: str = "",
    ) -> None:
        """Save a clip answer or a summary and show it in the chat (when that chat is shown)."""
        from app.core.video.run import save_summary, summary_text

        try:
            if ask.kind == "summary":
                if not text and reason is StopReason.CANCELLED:
                    return  # nothing was written: no empty summary in the chat
                message_id = save_summary(self._store, ask.session_id, text, reason, timings)
                stored, boxes = summary_text(text), ()
                if self._run is not None:
                    self._run = replace(self._run, summary=text)
            else:
                writer = Conversation(self._store).begin_answer(ask.session_id)
                final, _notes = writer.finish(reason, timings, error, text=text)
                message_id, stored, boxes = final.id, text, final.boxes
        except StoreError as exc:
            self.message_posted.emit(f"The answer could not be saved: {exc.message}")
            return
        if self._chat.session_id == ask.session_id:
            self._view.add_message(Message(message_id, ask.session_id, Role.ASSISTANT, stored,
                                           time.time(), stop_reason=reason, timings=timings,
                                           error=error, boxes=boxes))  # fmt: skip
        self._chat.announce_sessions_changed()
