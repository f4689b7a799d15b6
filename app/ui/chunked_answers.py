"""The chat controller's chunk-by-chunk answers: save the question, map-reduce, save the answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer, Signal

from app.core.messages import (
    Attachment,
    AttachmentKind,
    AttachmentStatus,
    ChatTurn,
    Message,
    Role,
    StopReason,
    Timings,
)
from app.core.settings import Settings
from app.inference.engine import GenerationRequest
from app.store.db import StoreError
from app.store.sessions import SessionStore
from app.ui.background import BackgroundTasks
from app.ui.chat_view import ChatView
from app.ui.composer import Composer
from app.ui.map_reduce import ChunkedOutcome, MapReduceRun
from app.ui.worker import InferenceWorker

_READABLE = (AttachmentKind.DOCUMENT, AttachmentKind.TEXT)
_NO_IMAGES = "images are not read when answering chunk by chunk"


@dataclass
class Stream:
    """The answer being written: its stored message and the text received so far."""

    message: Message
    parts: list[str] = field(default_factory=list)
    saved: str = ""
    #: Whether the user was told that checkpoints stopped saving (told once per answer).
    told_unsaved: bool = False

    @property
    def text(self) -> str:
        return "".join(self.parts)


class ChunkedAnswers:
    """Mixed into `ChatController`: answer over documents too long for one prompt.

    The question is committed like any other; each chunk's answer streams into the answer's
    bubble (and is checkpointed), and the combined answer is saved with every chunk's notes.
    """

    # Provided by ChatController.
    _store: SessionStore
    _view: ChatView
    _composer: Composer
    _settings: Callable[[], Settings]
    _worker: InferenceWorker | None
    _session_id: str | None
    _stream: Stream | None
    _chunked: MapReduceRun | None
    _tasks: BackgroundTasks
    _checkpoint_timer: QTimer
    generating_changed: Signal
    message_posted: Signal

    if TYPE_CHECKING:

        def _refusal(self) -> str | None: ...
        def ensure_engine(self) -> None: ...
        def _save_question(
            self, text: str, attachments: list[Attachment], from_composer: bool
        ) -> tuple[str, Message, bool] | None: ...
        def _show_session(self, session_id: str) -> None: ...
        def _finish(
            self, reason: StopReason, timings: Timings | None, error: str, text: str | None = None
        ) -> None: ...

    @property
    def chunked_run(self) -> MapReduceRun | None:
        """The chunk-by-chunk answer running now, or None."""
        return self._chunked

    def send_chunked(self, max_prompt_tokens: int) -> bool:
        """Answer the composer's question chunk by chunk over its documents (map-reduce).

        Args:
            max_prompt_tokens: the most one request's prompt may hold (context minus answer).

        Returns:
            True when the question was saved and the run started.
        """
        text = self._composer.text().strip()
        attachments = self._composer.chips.ready_attachments()
        refusal = self._refusal()
        if refusal is None and self._composer.chips.is_reading():
            refusal = "Some attachments are still being read; try again in a moment."
        if refusal is None and not any(a.kind in _READABLE for a in attachments):
            refusal = "Answering chunk by chunk needs attached documents or text files."
        if refusal is None and not text:
            refusal = "Type the question to ask of each chunk first."
        if refusal is not None:
            self._composer.show_notice(refusal, kind="error")
            return False
        self.ensure_engine()
        saved = self._save_question(text, attachments, True) if self._worker else None
        if saved is None:
            return False
        session_id, user, edited = saved
        try:
            user = self._mark_chunked(user)
            assistant = self._store.begin_assistant_message(session_id)
        except StoreError as exc:
            self.message_posted.emit(exc.message)
            return False
        if edited:
            self._show_session(session_id)
        else:
            self._view.add_message(user)
        self._stream = Stream(assistant)
        self._view.begin_stream(assistant)
        settings = self._settings()

        def request_for(prompt: str) -> GenerationRequest:
            turn = ChatTurn(role=Role.USER, text=prompt)
            return GenerationRequest(
                (turn,), settings.max_new_tokens, settings.temperature, settings.top_p
            )

        run = MapReduceRun(
            text, user.attachments, self._store.blobs.path, settings.model_dir,
            max_prompt_tokens, request_for, self._worker.generate,  # type: ignore[union-attr]
            assistant.id, self._tasks, parent=self,  # type: ignore[arg-type]
        )  # fmt: skip
        run.progressed.connect(self._composer.chunk_progress.set_progress)
        run.text_streamed.connect(self._on_chunked_text_streamed)
        run.finished.connect(self._on_chunked_finished)
        self._chunked = run
        self._composer.chunk_progress.begin()
        self._checkpoint_timer.start()
        self._composer.set_generating(True)
        self.generating_changed.emit(True)
        run.start()
        return True

    def _mark_chunked(self, user: Message) -> Message:
        """Documents are read chunk by chunk; images are not sent that way (say so on them)."""
        marked = tuple(
            replace(a, status=AttachmentStatus.USED)
            if a.kind in _READABLE
            else replace(a, status=AttachmentStatus.SKIPPED, detail=_NO_IMAGES)
            for a in user.attachments
        )
        if marked != user.attachments:
            self._store.update_attachments(user.id, marked)
        return replace(user, attachments=marked)

    def _on_chunked_text_streamed(self, text: str) -> None:
        stream = self._stream
        if stream is None:
            return
        stream.parts.append(text)  # checkpointed: a crash keeps the chunks' answers so far
        if stream.message.session_id == self._session_id:
            self._view.append_stream(stream.message.id, text)

    def _on_chunked_finished(self, outcome: ChunkedOutcome) -> None:
        if outcome.error:
            self.message_posted.emit(f"The answer failed: {outcome.error}")
        self._finish(outcome.stop_reason, outcome.timings, outcome.error, outcome.text)
