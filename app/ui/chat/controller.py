"""The conversation logic: wires store, worker and views (send, stream, stop, regenerate, edit)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QPixmap

from app.conversation.grounding import prepare_question
from app.conversation.pipeline import (
    CHECKPOINT_EVERY_S,
    AnswerOutcome,
    AnswerWriter,
    Conversation,
    request_for,
)
from app.core.messages import Attachment, Message, Role, StopReason, Timings
from app.core.settings import Settings
from app.inference.engine import Engine, EngineStatus, GenerationResult
from app.store.db import StoreError
from app.store.sessions import SessionStore
from app.ui.composer.composer import Composer
from app.ui.ports import AnswerRun, AnswerRunFactory, SendGuard
from app.ui.tasks.inference_worker import InferenceWorker
from app.ui.transcript.view import ChatView
from app.ui.widgets.thumbnails import ThumbnailCache

log = logging.getLogger(__name__)

#: Builds an engine from the settings in force; called on the worker thread.
EngineBuilder = Callable[[Settings], Engine]


class ChatController(QObject):
    """The conversation logic behind the window; views only show, the store only stores.

    It satisfies `app.ui.ports.ChatPort`, which is how the other features see it.

    Args:
        store: the session store.
        view: the transcript.
        composer: where the user types and attaches.
        settings: returns the settings in force (sampling values are read at each send).
        model_problem: returns a sentence when no model can be used (none chosen), else None.
    """

    #: str | None: the chat now shown (None: a new, not yet saved chat).
    session_opened = Signal(object)
    #: a chat was created or retitled, so the sidebar should reload.
    sessions_changed = Signal()
    #: bool: an answer started (True) or ended (False).
    generating_changed = Signal(bool)
    #: str: a sentence for the status bar.
    message_posted = Signal(str)
    #: Message: an answer ended and was saved (with the boxes found in it).
    answer_finished = Signal(object)
    #: EngineStatus | None: the model was loaded (with its memory) or unloaded (None).
    engine_status_changed = Signal(object)
    #: (state, detail): the engine's state word ("loading", "ready", "no model", ...) and why.
    engine_state_changed = Signal(str, str)
    #: LoadProgress: how far loading the model has come.
    load_progressed = Signal(object)
    #: Timings | None: the last answer's timings.
    timings_changed = Signal(object)
    #: (done, total): prompt tokens the answer being written has read (a long prompt).
    prefill_progressed = Signal(int, int)

    def __init__(
        self,
        *,
        store: SessionStore,
        view: ChatView,
        composer: Composer,
        settings: Callable[[], Settings],
        model_problem: Callable[[], str | None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._conversation = Conversation(store)
        self._view = view
        self._composer = composer
        self._settings = settings
        self._model_problem = model_problem
        self._worker: InferenceWorker | None = None
        self._factory: EngineBuilder | None = None
        self._load_error = ""
        self._restart_pending = False
        self._shut_down = False
        self._session_id: str | None = None
        self._editing_id: str | None = None
        self._stream: AnswerWriter | None = None
        self._run: AnswerRun | None = None  # writes the answer instead of `generate`
        self._send_guards: list[SendGuard] = []
        self._reads_images = True  # False once a server says its model reads text only
        self._thumbs = ThumbnailCache(store.blobs.path)
        self._checkpoint_timer = QTimer(self)
        self._checkpoint_timer.setInterval(round(CHECKPOINT_EVERY_S * 1000))
        self._checkpoint_timer.timeout.connect(self.checkpoint)
        composer.send_requested.connect(self.send)
        composer.stop_requested.connect(self.stop)
        composer.edit_cancelled.connect(self._on_composer_edit_cancelled)
        view.regenerate_requested.connect(self.regenerate)
        view.edit_requested.connect(self.edit)
        view.set_messages([], self.thumbnail_for)  # so bubbles added later get thumbnails

    # -- engine ------------------------------------------------------------------------------

    def set_engine_factory(self, factory: EngineBuilder) -> None:
        """Say how to build the engine; `ensure_engine` starts it (after the window shows).

        Args:
            factory: called on the worker thread with the settings in force when it starts.
        """
        self._factory = factory
        problem = self._model_problem()
        if problem:
            self.engine_state_changed.emit("no model", problem)

    def ensure_engine(self) -> None:
        """Start the worker thread unless it runs; it loads the model at once when one is set."""
        if self._worker is None and self._factory is not None and not self._shut_down:
            self._start_engine(self._factory)

    def _start_engine(self, factory: EngineBuilder) -> None:
        snapshot = self._settings()
        worker = InferenceWorker()
        worker.state_changed.connect(self._on_worker_state_changed)
        worker.load_progressed.connect(self.load_progressed)
        worker.load_finished.connect(self._on_worker_load_finished)
        worker.load_failed.connect(self._on_worker_load_failed)
        worker.unload_finished.connect(self._on_worker_unload_finished)
        worker.chunk_received.connect(self._on_worker_chunk_received)
        worker.prefill_progressed.connect(self._on_worker_prefill_progressed)
        worker.generation_finished.connect(self._on_worker_generation_finished)
        worker.generation_failed.connect(self._on_worker_generation_failed)
        worker.start(lambda: factory(snapshot))
        self._worker = worker
        self._load_error = ""
        problem = self._model_problem()
        if problem:
            self.engine_state_changed.emit("no model", problem)
        else:
            worker.load()

    def restart_engine(self) -> None:
        """Rebuild the engine (the model folder or quantization changed); waits for an answer."""
        if self._stream is not None:
            self._restart_pending = True
            return
        self._restart_pending = False
        self._stop_worker()
        self.ensure_engine()

    def load_model(self) -> None:
        """Load the model now (it also loads by itself at start and before an answer)."""
        self.ensure_engine()
        if self._worker is not None and not self._model_problem():
            self._worker.load()

    def cancel_model_load(self) -> None:
        """Stop a load in progress; the model can be loaded again later."""
        if self._worker is not None and self._worker.state == "loading":
            self._worker.cancel()

    def unload_model(self) -> None:
        """Free the model's memory now; the next answer loads it again. Not while answering."""
        if self._worker is not None and self._stream is None:
            self._worker.unload()

    @property
    def worker(self) -> InferenceWorker | None:
        """The inference worker (None before `ensure_engine` starts it, or after shutdown)."""
        return self._worker

    def engine(self) -> InferenceWorker | None:
        """The inference worker, started if it was not (None when it cannot start)."""
        self.ensure_engine()
        return self._worker

    def add_send_guard(self, guard: SendGuard) -> None:
        """Consult `guard` before a send from the composer; a sentence it returns refuses it.

        The documents feature refuses a draft over the context budget; the video feature
        refuses while it asks about a clip.
        """
        self._send_guards.append(guard)

    def announce_sessions_changed(self) -> None:
        """Say that a chat was created or changed (another feature saved to it)."""
        self.sessions_changed.emit()

    def refusal(self) -> str | None:
        """Why nothing can be asked of the model now (an answer runs, no model), or None."""
        return self._refusal()

    @property
    def engine_state(self) -> str:
        """The worker's last state word ("not loaded" before it has said anything)."""
        return self._worker.state if self._worker else "not loaded"

    # -- sessions ----------------------------------------------------------------------------

    @property
    def session_id(self) -> str | None:
        """The chat shown, or None for a new chat not saved yet."""
        return self._session_id

    @property
    def generating(self) -> bool:
        """True while an answer is being written."""
        return self._stream is not None

    def open_session(self, session_id: str | None) -> None:
        """Show a chat (None: a new empty one); a streaming answer goes on in the background."""
        self._cancel_edit()
        self._session_id = session_id
        if session_id is None:
            self._view.set_messages([], self.thumbnail_for)
        else:
            self._show_session(session_id)
        self.session_opened.emit(session_id)

    def new_chat(self) -> None:
        """Start an empty chat; it is saved when its first message is sent."""
        self.open_session(None)
        self._composer.focus_input()

    def forget_session(self, session_id: str) -> None:
        """Close a chat that left the list (trashed) if it is the one shown."""
        if session_id == self._session_id:
            self.open_session(None)

    # -- conversation ------------------------------------------------------------------------

    def send(self) -> bool:
        """Send what the composer holds; on any refusal the text stays in the box.

        Returns:
            True when a message was saved and an answer started.
        """
        reading = self._composer.chips.is_reading()
        return self._send(self._composer.text(), self._composer.chips.ready_attachments(), reading)

    def send_text(self, text: str, attachments: Sequence[Attachment] = ()) -> bool:
        """Send a message that is not in the composer (Locate); the composer is left as it is.

        Returns:
            True when a message was saved and an answer started.
        """
        return self._send(text, list(attachments), False, from_composer=False)

    def _send(
        self, text: str, attachments: list[Attachment], reading: bool, from_composer: bool = True
    ) -> bool:
        text = text.strip()
        if not text and not attachments:
            return False
        refusal = self._refusal()
        if refusal is None and reading:
            refusal = "Some attachments are still being read; send again in a moment."
        if refusal is None:
            # The chat shown is the history a Locate may take its image from.
            text, refusal = prepare_question(text, attachments, self._view.messages())
        if refusal is None and from_composer:
            refusal = self._guard_refusal()
        if refusal is not None:
            self._composer.show_notice(refusal, kind="error")
            return False
        saved = self._save_question(text, attachments, from_composer)
        if saved is None:
            return False
        session_id, user, edited = saved
        return self._start_answer(session_id, None if edited else user)

    def _save_question(
        self, text: str, attachments: list[Attachment], from_composer: bool
    ) -> tuple[str, Message, bool] | None:
        """Commit the question (replacing an edited one); (session, message, edited) or None."""
        editing_id = self._editing_id if from_composer else None
        try:
            saved = self._conversation.save_question(
                self._session_id, text, attachments, replacing=editing_id
            )
        except StoreError as exc:
            self._composer.show_notice(f"Not sent: {exc.message}", kind="error")
            return None
        self._session_id = saved.session_id
        if from_composer:
            self._editing_id = None
            self._composer.clear()
        self._composer.clear_notice()
        self.sessions_changed.emit()
        if saved.created:
            self.session_opened.emit(saved.session_id)
        return saved.session_id, saved.message, editing_id is not None

    def send_run(self, prepare: Callable[[Message], Message], make_run: AnswerRunFactory) -> bool:
        """Send the composer's question and let a run write the answer (chunk by chunk).

        Args:
            prepare: given the saved question, returns it as it should be shown (it may mark
                attachments in the store, e.g. images not read chunk by chunk).
            make_run: builds the run for the question and the answer's message id.

        Returns:
            True when the question was saved and the run started.
        """
        text = self._composer.text().strip()
        refusal = self._refusal()
        if refusal is None and self.engine() is None:
            refusal = "The model is not available."
        if refusal is not None:
            self._composer.show_notice(refusal, kind="error")
            return False
        saved = self._save_question(text, self._composer.chips.ready_attachments(), True)
        if saved is None:
            return False
        session_id, user, edited = saved
        try:
            user = prepare(user)
            writer = self._conversation.begin_answer(session_id)
        except StoreError as exc:
            self.message_posted.emit(exc.message)
            return False
        if edited:
            self._show_session(session_id)
        else:
            self._view.add_message(user)
        run = make_run(user, writer.message.id)
        run.text_streamed.connect(self._on_run_text_streamed)
        run.finished.connect(self._on_run_finished)
        self._run = run
        self._begin_stream(writer)
        run.start()
        return True

    def history_for_draft(self) -> list[Message]:
        """The messages a send from the composer would follow (before an edited one)."""
        messages = self._view.messages()
        if self._editing_id is not None:
            ids = [m.id for m in messages]
            if self._editing_id in ids:
                return messages[: ids.index(self._editing_id)]
        return messages

    def stop(self) -> None:
        """Stop the answer being written (it is kept, marked as cancelled)."""
        if self._run is not None:
            self._run.cancel()  # ends at once between chunks; else when the step stops
        if self._stream is not None and self._worker is not None:
            self._worker.cancel()

    def regenerate(self, message_id: str) -> bool:
        """Hide an answer (and what follows) and answer the question before it again.

        Returns:
            True when a new answer started.
        """
        refusal = self._refusal()
        if refusal is not None or self._session_id is None:
            self._composer.show_notice(refusal or "Open a chat first.", kind="error")
            return False
        try:
            self._store.supersede_from(message_id)
        except StoreError as exc:
            self.message_posted.emit(exc.message)
            return False
        return self._start_answer(self._session_id, None)

    def edit(self, message_id: str) -> None:
        """Put an earlier message back in the composer; sending it replaces it and what followed."""
        if self._session_id is None:
            return
        message = next(
            (m for m in self._read_messages(self._session_id) if m.id == message_id), None
        )
        if message is None or message.role is not Role.USER:
            return
        self._editing_id = message_id
        self._composer.chips.clear()
        self._composer.set_text(message.text)
        self._composer.chips.add_ready(message.attachments)
        self._composer.set_editing(True)
        self._composer.focus_input()

    def last_answer(self) -> str:
        """The text of the newest answer in the open chat ("" when there is none)."""
        if self._stream is not None and self._stream.message.session_id == self._session_id:
            return self._stream.text
        if self._session_id is None:
            return ""
        messages = self._read_messages(self._session_id)
        answers = [m for m in messages if m.role is Role.ASSISTANT]
        return answers[-1].text if answers else ""

    def copy_last_answer(self) -> bool:
        """Put the newest answer on the clipboard; False when there is none."""
        text = self.last_answer()
        if text:
            QGuiApplication.clipboard().setText(text)
            self.message_posted.emit("Copied the last answer.")
        return bool(text)

    def checkpoint(self) -> None:
        """Save the streamed text if it grew since the last save (runs about once a second)."""
        stream = self._stream
        if stream is None:
            return
        try:
            stream.checkpoint()  # a locked database (another program writing) waits a turn
        except StoreError as exc:
            log.warning("checkpoint of message %s failed: %s", stream.message.id, exc.message)
            if not stream.told_unsaved:  # once per answer, not every second
                stream.told_unsaved = True
                self.message_posted.emit(f"The answer is not being saved: {exc.message}")

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Cancel and save a streaming answer as cancelled, then stop and join the worker thread."""
        self._shut_down = True
        if self._run is not None:
            self._run.cancel()
        if self._stream is not None:
            if self._worker is not None:
                self._worker.cancel()
            self._finish(StopReason.CANCELLED, None, "")
        self._stop_worker(timeout_ms)

    def thumbnail_for(self, attachment: Attachment) -> QPixmap | None:
        """A small picture of an image attachment (cached), or None for other kinds."""
        return self._thumbs(attachment)

    # -- internals ---------------------------------------------------------------------------

    def _guard_refusal(self) -> str | None:
        """The first sentence a send guard gives, or None."""
        return next((r for r in (guard() for guard in self._send_guards) if r), None)

    def _refusal(self) -> str | None:
        """Why nothing can be sent now, or None."""
        if self._stream is not None:
            return "An answer is still being written: press Stop (Esc) first."
        problem = self._model_problem()
        if problem:
            return problem
        if self.engine_state == "error":
            reason = self._load_error or "it could not be loaded."
            return f"The model is not available: {reason} Check the model in Settings (Ctrl+,)."
        return None

    def _start_answer(self, session_id: str, user: Message | None) -> bool:
        """Build the prompt from the stored history and ask the worker for an answer.

        Args:
            session_id: the chat.
            user: the message just sent, to append to the view; None re-shows the whole chat.
        """
        self.ensure_engine()
        if self._worker is None:
            return False
        try:
            opened = self._conversation.open_answer(session_id, images=self._reads_images)
        except StoreError as exc:
            self.message_posted.emit(exc.message)
            return False
        if opened is None:
            self._show_session(session_id)
            return False
        if user is None:
            self._view.set_messages(opened.history, self.thumbnail_for)
        else:
            self._view.add_message(opened.history[-1])
        self._begin_stream(opened.writer)
        self._worker.generate(opened.writer.message.id, request_for(opened.turns, self._settings()))
        return True

    def _begin_stream(self, writer: AnswerWriter) -> None:
        self._stream = writer
        self._view.begin_stream(writer.message)
        self._checkpoint_timer.start()
        self._composer.set_generating(True)
        self.generating_changed.emit(True)

    def _read_messages(self, session_id: str) -> list[Message]:
        """The chat's messages; a store failure (locked, damaged) becomes a notice, not a crash."""
        try:
            return self._store.messages(session_id)
        except StoreError as exc:
            self.message_posted.emit(exc.message)
            return []

    def _show_session(self, session_id: str) -> None:
        messages = self._read_messages(session_id)
        stream = self._stream
        live = stream is not None and stream.message.session_id == session_id
        shown = [m for m in messages if not (live and stream and m.id == stream.message.id)]
        self._view.set_messages(shown, self.thumbnail_for)
        if live and stream is not None:
            self._view.begin_stream(replace(stream.message, text=stream.text))

    def _finish(
        self, reason: StopReason, timings: Timings | None, error: str, text: str | None = None
    ) -> None:
        stream = self._stream
        if stream is None:
            return
        self._stream = None
        self._run = None  # whatever ended it, the run is done with this answer
        self._checkpoint_timer.stop()
        final, _notes = stream.final_message(reason, timings, error, text=text)
        try:
            stream.save(final)
        except StoreError as exc:
            self.message_posted.emit(f"The answer could not be saved: {exc.message}")
        if final.session_id == self._session_id:
            self._view.finish_stream(final)
        self.answer_finished.emit(final)
        self._composer.set_generating(False)
        self.timings_changed.emit(timings)
        self.generating_changed.emit(False)
        self.sessions_changed.emit()
        if self._restart_pending:
            self.restart_engine()

    def _stop_worker(self, timeout_ms: int = 10_000) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(timeout_ms)

    def _cancel_edit(self) -> None:
        if self._editing_id is not None:
            self._editing_id = None
            self._composer.clear()

    # -- worker slots ------------------------------------------------------------------------

    def _on_worker_state_changed(self, state: str) -> None:
        self.engine_state_changed.emit(state, self._load_error if state == "error" else "")

    def _on_worker_load_finished(self, status: EngineStatus) -> None:
        self._load_error = ""
        self._reads_images = status.reads_images
        self.engine_status_changed.emit(status)

    def _on_worker_unload_finished(self) -> None:
        self.engine_status_changed.emit(None)

    def _on_worker_load_failed(self, message: str) -> None:
        self._load_error = message
        self.engine_state_changed.emit("error", message)
        self.message_posted.emit(f"The model is not available: {message}")

    def _on_worker_chunk_received(self, request_id: str, text: str) -> None:
        stream = self._stream
        if stream is None or stream.message.id != request_id:
            return  # another feature's request (a chunk of a chunked answer, a video ask)
        stream.add(text)
        if stream.message.session_id == self._session_id:
            self._view.append_stream(request_id, text)

    def _on_worker_generation_finished(self, request_id: str, result: GenerationResult) -> None:
        if self._stream is not None and self._stream.message.id == request_id:
            self._finish(result.stop_reason, result.timings, "")

    def _on_worker_generation_failed(self, request_id: str, message: str) -> None:
        if self._stream is not None and self._stream.message.id == request_id:
            self.message_posted.emit(f"The answer failed: {message}")
            self._finish(StopReason.ERROR, None, message)

    def _on_worker_prefill_progressed(self, request_id: str, done: int, total: int) -> None:
        if self._stream is not None and self._stream.message.id == request_id:
            self.prefill_progressed.emit(done, total)

    def _on_run_text_streamed(self, text: str) -> None:
        stream = self._stream
        if stream is None or self._run is None:
            return
        stream.add(text)  # checkpointed: a crash keeps the chunks' answers so far
        if stream.message.session_id == self._session_id:
            self._view.append_stream(stream.message.id, text)

    def _on_run_finished(self, outcome: AnswerOutcome) -> None:
        if self._run is None:
            return
        if outcome.error:
            self.message_posted.emit(f"The answer failed: {outcome.error}")
        self._finish(outcome.stop_reason, outcome.timings, outcome.error, outcome.text)

    def _on_composer_edit_cancelled(self) -> None:
        self._editing_id = None
