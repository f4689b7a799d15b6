"""The video panel's three asks: every frame, the clip as a whole, and a summary.

Each ask commits its question the way `scout-desk video` does (the video and its frames as
USED attachments of one user message), runs as one job on the inference worker, and saves
every answer as it arrives (`AskRecords`, with the core's save functions), so the chat shows
it and reopening the chat rebuilds the timeline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from app.conversation.video_questions import (
    FRAME_TOKENS,
    SUMMARY_TOKENS,
    AnswerFrames,
    Decoding,
    clip_job,
    frames_job,
    summary_job,
)
from app.core.messages import Attachment, Message, Role, StopReason, Timings
from app.core.settings import Settings
from app.inference.engine import JobFunction
from app.store.db import StoreError
from app.store.sessions import SessionStore
from app.ui.ports import ChatPort
from app.ui.tasks.inference_worker import InferenceWorker
from app.ui.transcript.view import ChatView
from app.ui.video.ask_records import AskRecords
from app.ui.video.clip_state import ClipState
from app.ui.video.panel import VideoPanel

if TYPE_CHECKING:
    from app.core.video.data import FrameResult
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


class VideoQuestions:
    """Asks Scout about the clip shown and saves what comes back, answer by answer.

    One question runs at a time; while it does, the chat refuses plain sends
    (`busy_refusal`) and the clip cannot change.

    Args:
        store: the session store.
        chat: the chat (the chat shown, its worker, its refusals).
        view: the transcript (saved questions and answers are shown there as they come).
        panel: the panel's widgets.
        clip: the clip shown (shared with the other video components).
        settings: returns the settings in force.
        answer_frames: returns the function that answers frames on the worker thread (read
            at each ask, so a test may swap it on the controller).
        batch_size: returns the frames per `generate` call (read at each ask).
        sample: samples frames, then calls the function it is given once they are there.
        is_sampling: whether frames are being sampled now.
        show_frame: shows a sampled frame in the preview.
        post: shows a sentence in the status bar.
        finished: told (kind, how) once an ask ended: kind "frames", "clip" or "summary";
            how "done", "cancelled" or "failed".
    """

    def __init__(
        self,
        *,
        store: SessionStore,
        chat: ChatPort,
        view: ChatView,
        panel: VideoPanel,
        clip: ClipState,
        settings: Callable[[], Settings],
        answer_frames: Callable[[], AnswerFrames],
        batch_size: Callable[[], int],
        sample: Callable[[Callable[[], object]], bool],
        is_sampling: Callable[[], bool],
        show_frame: Callable[[int], bool],
        post: Callable[[str], None],
        finished: Callable[[str, str], None],
    ) -> None:
        self._store = store
        self._chat = chat
        self._panel = panel
        self._clip = clip
        self._settings = settings
        self._answer_frames = answer_frames
        self._batch_size = batch_size
        self._sample = sample
        self._is_sampling = is_sampling
        self._show_frame = show_frame
        self._post = post
        self._finished = finished
        self._records = AskRecords(store=store, chat=chat, view=view, post=post)
        self._ask: _Ask | None = None
        self._connected: InferenceWorker | None = None

    @property
    def asking(self) -> bool:
        """Whether a question about the clip is being answered."""
        return self._ask is not None

    @property
    def opening_own_session(self) -> bool:
        """Whether the chat is being switched to the chat a question was just saved in."""
        return self._records.opening_own_session

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
        clip = self._clip
        if not clip.frames:
            return self._sample(lambda: self.ask_frames(question))
        assert clip.video is not None
        saved = self._save_question(question.strip(), [clip.video, *clip.images])
        if saved is None:
            return False
        session_id, user = saved
        from app.core.video.attachments import frame_refs

        refs = frame_refs(user.attachments, self._store.blobs.path)
        max_patches = None
        if self._panel.faster():
            from app.inference.frames import FAST_MAX_PATCHES

            max_patches = FAST_MAX_PATCHES
        # The answer-length setting caps each frame's answer too (256 tokens at most).
        tokens = min(self._settings().max_new_tokens, FRAME_TOKENS)
        job = frames_job(
            self._answer_frames(), question.strip(), refs, clip.video.name, self._decoding(),
            batch_size=self._batch_size(), max_patches=max_patches, max_new_tokens=tokens,
        )  # fmt: skip
        for frame in clip.frames:
            frame.answer, frame.boxes, frame.stop_reason, frame.waiting = None, (), None, True
        clip.run, clip.run_session = None, session_id
        self._panel.set_frames(clip.frames)
        self._panel.set_answer("", "")
        return self._start_ask("frames", session_id, user, job, len(refs))

    def ask_clip(self, question: str) -> bool:
        """Ask `question` once about the clip: up to five sampled frames in one prompt.

        Returns:
            True when the question was saved and the answer started (or sampling did).
        """
        if not self._can_ask(question):
            return False
        clip = self._clip
        if not clip.frames:
            return self._sample(lambda: self.ask_clip(question))
        assert clip.video is not None
        from app.core.video.attachments import frame_refs
        from app.inference.frames import pick_clip_frames

        chosen = pick_clip_frames(list(range(len(clip.images))))  # type: ignore[arg-type]
        images = [clip.images[i] for i in chosen]  # type: ignore[index]
        saved = self._save_question(question.strip(), [clip.video, *images])
        if saved is None:
            return False
        session_id, user = saved
        refs = frame_refs(user.attachments, self._store.blobs.path)
        duration = clip.info.duration_s if clip.info else 0.0
        job = clip_job(question.strip(), refs, clip.video.name, duration, self._decoding(),
                       self._settings().max_new_tokens)  # fmt: skip
        self._panel.set_answer("About the clip", "")
        return self._start_ask("clip", session_id, user, job, 0)

    def summarize(self) -> bool:
        """Summarise the per-frame answers of the run shown (saved after its answers).

        Returns:
            True when the summary started.
        """
        run, session_id = self._clip.run, self._clip.run_session
        refusal = self._refusal()
        if refusal is None and (run is None or session_id is None or not run.results):
            refusal = "Ask every frame first: the summary is written from their answers."
        if refusal is None and not self._is_latest(session_id or "", run):
            refusal = "This run is not the chat's latest question; ask every frame again first."
        if refusal is not None or run is None or session_id is None:
            self._panel.set_status(refusal or "", error=True)
            return False
        duration = run.info.duration_s if run.info else 0.0
        tokens = min(self._settings().max_new_tokens, SUMMARY_TOKENS)
        job = summary_job(run.question, run.results, run.video.name, duration, self._decoding(),
                          tokens)  # fmt: skip
        question = Message(run.question_id, session_id, Role.USER, run.question, time.time())
        self._panel.set_answer("Summary", "")
        return self._start_ask("summary", session_id, question, job, 0)

    def cancel(self) -> None:
        """Stop the question being answered (what was answered is kept)."""
        if self._ask is not None:
            self._ask.worker.cancel()
            self._panel.set_progress(self._ask.done, self._ask.total, "Stopping…")

    def shutdown(self) -> None:
        """Cancel a running question and save what it has (the window is closing)."""
        ask, self._ask = self._ask, None
        if ask is None:
            return
        ask.worker.cancel()
        text = "".join(ask.parts)
        if ask.kind == "clip":
            self._save_reply(ask, text, StopReason.CANCELLED, None)
        elif ask.kind == "summary" and text:
            self._records.save_summary_on_close(ask.session_id, text)

    # -- internals ---------------------------------------------------------------------------

    def _refusal(self) -> str | None:
        if self._ask is not None:
            return BUSY
        if self._clip.video is None:
            return "Open a video first."
        return self._chat.refusal()

    def _can_ask(self, question: str) -> bool:
        refusal = self._refusal()
        if refusal is None and not question.strip():
            refusal = "Type a question about the video first."
        if refusal is None and self._is_sampling():
            refusal = "Frames are being sampled; ask again in a moment."
        if refusal is not None:
            self._panel.set_status(refusal, error=True)
            return False
        return True

    def _decoding(self) -> Decoding:
        settings = self._settings()
        return Decoding(settings.temperature, settings.top_p)

    def _is_latest(self, session_id: str, run: VideoRun | None) -> bool:
        return run is not None and self._records.is_latest_question(session_id, run.question_id)

    def _save_question(
        self, text: str, attachments: Sequence[Attachment]
    ) -> tuple[str, Message] | None:
        """Commit the question to the chat shown (a new chat when none is) and show it."""
        try:
            session_id, user = self._records.save_question(text, attachments)
        except StoreError as exc:
            self._panel.set_status(f"Not asked: {exc.message}", error=True)
            return None
        self._records.show_question(session_id, user)
        return session_id, user

    def _start_ask(
        self, kind: str, session_id: str, question: Message, job: JobFunction, total: int
    ) -> bool:
        worker = self._chat.engine()
        if worker is None:
            self._panel.set_status("The model is not available.", error=True)
            return False
        if worker is not self._connected:
            worker.job_progressed.connect(self._on_worker_job_progressed)
            worker.job_finished.connect(self._on_worker_job_finished)
            worker.job_failed.connect(self._on_worker_job_failed)
            self._connected = worker
        self._ask = _Ask(f"video-{kind}-{uuid.uuid4().hex[:12]}", kind, session_id, question,
                         worker, total)  # fmt: skip
        self._panel.set_busy("asking")
        self._panel.set_status("")
        waiting = {"frames": f"Asking about {total} frames…", "clip": "Asking about the clip…",
                   "summary": "Writing the summary…"}  # fmt: skip
        self._panel.set_progress(0, total, waiting[kind])
        worker.run_job(self._ask.id, job)
        return True

    def _on_worker_job_progressed(self, job_id: str, data: object) -> None:
        ask = self._ask
        if ask is None or job_id != ask.id:
            return
        if ask.kind != "frames":
            ask.parts.append(str(data))
            self._panel.append_answer(str(data))
            return
        self._on_frame_answered(ask, data)  # type: ignore[arg-type]

    def _on_frame_answered(self, ask: _Ask, result: FrameResult) -> None:
        message_id = self._records.save_frame_answer(ask.session_id, result)
        ask.done += 1
        if 0 <= result.index < len(self._clip.frames):
            frame = self._clip.frames[result.index]
            frame.answer, frame.boxes = result.answer, result.boxes
            frame.stop_reason, frame.waiting = result.stop_reason, False
            self._panel.frame_changed(result.index)
            if self._clip.selected in (None, result.index):
                self._show_frame(result.index)  # the newest answer, unless one was picked
                if ask.done < ask.total:
                    self._clip.selected = None  # keep following the answers as they come
        self._panel.set_progress(ask.done, ask.total, f"Frame {ask.done} of {ask.total}")
        self._records.show_frame_answer(ask.session_id, message_id, result)

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
        self._finished(ask.kind, "cancelled" if stopped else "done")

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
        self._post(sentence)
        self._finished(ask.kind, "failed")

    def _end_frames(self, ask: _Ask, failure: str) -> None:
        from app.core.video.run import load_video_run

        for frame in self._clip.frames:
            frame.waiting = False
        self._panel.set_frames(self._clip.frames)
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
        self._clip.run = load_video_run(messages, index) if index is not None else None
        self._chat.announce_sessions_changed()

    def _end_panel(self, note: str, error: bool = False) -> None:
        self._panel.hide_progress()
        self._panel.set_busy(None)
        self._panel.set_status(note, error=error)

    def _save_reply(
        self,
        ask: _Ask,
        text: str,
        reason: StopReason,
        timings: Timings | None,
        error: str = "",
    ) -> None:
        """Save a clip answer or a summary; a saved summary joins the run shown."""
        kind, session_id = ask.kind, ask.session_id
        if not self._records.save_reply(kind, session_id, text, reason, timings, error):
            return
        if kind == "summary" and self._clip.run is not None:
            self._clip.run = replace(self._clip.run, summary=text)
        self._chat.announce_sessions_changed()
