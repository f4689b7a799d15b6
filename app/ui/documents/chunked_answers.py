"""Answers over documents too long for one prompt: the question is asked chunk by chunk.

The chat saves the question and streams and saves the answer like any other; this component
checks that a chunked answer makes sense, marks what is read, and drives a `MapReduceRun` on
the inference worker, showing its progress in the composer's chunk row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QObject

from app.conversation.pipeline import request_for
from app.core.messages import (
    AttachmentKind,
    AttachmentStatus,
    ChatTurn,
    Message,
    Role,
)
from app.core.settings import Settings
from app.inference.engine import GenerationRequest, GenerationResult
from app.store.sessions import SessionStore
from app.ui.composer.composer import Composer
from app.ui.documents.chunk_progress import ChunkProgress
from app.ui.documents.map_reduce import MapReduceRun
from app.ui.ports import ChatPort
from app.ui.tasks.inference_worker import InferenceWorker
from app.ui.tasks.pool import TaskPool

_READABLE = (AttachmentKind.DOCUMENT, AttachmentKind.TEXT)
_NO_IMAGES = "images are not read when answering chunk by chunk"


class ChunkedAnswers(QObject):
    """Starts chunk-by-chunk answers and feeds them the worker's signals.

    Args:
        store: the session store (blobs, attachment marks).
        chat: the chat, which saves the question and the answer.
        composer: where the question and its documents are.
        progress: the composer row that shows the chunks done.
        settings: the settings in force.
        tasks: the pool that plans the chunks.
    """

    def __init__(
        self,
        *,
        store: SessionStore,
        chat: ChatPort,
        composer: Composer,
        progress: ChunkProgress,
        settings: Callable[[], Settings],
        tasks: TaskPool,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._chat = chat
        self._composer = composer
        self._progress = progress
        self._settings = settings
        self._tasks = tasks
        self._run: MapReduceRun | None = None
        #: Whether the engine is a server (then the chunks go as concurrent requests).
        self.on_server = False
        self._connected: InferenceWorker | None = None

    @property
    def run(self) -> MapReduceRun | None:
        """The chunk-by-chunk answer running now, or None."""
        return self._run

    def send(self, max_prompt_tokens: int) -> bool:
        """Answer the composer's question chunk by chunk over its documents (map-reduce).

        Args:
            max_prompt_tokens: the most one request's prompt may hold (context minus answer).

        Returns:
            True when the question was saved and the run started.
        """
        text = self._composer.text().strip()
        attachments = self._composer.chips.ready_attachments()
        refusal = self._chat.refusal()
        if refusal is None and self._composer.chips.is_reading():
            refusal = "Some attachments are still being read; try again in a moment."
        if refusal is None and not any(a.kind in _READABLE for a in attachments):
            refusal = "Answering chunk by chunk needs attached documents or text files."
        if refusal is None and not text:
            refusal = "Type the question to ask of each chunk first."
        if refusal is not None:
            self._composer.show_notice(refusal, kind="error")
            return False
        return self._chat.send_run(
            self._mark_read,
            lambda user, answer_id: self._make_run(user, answer_id, max_prompt_tokens),
        )

    def end(self) -> None:
        """The answer ended (however it ended): hide the progress, forget the run."""
        run, self._run = self._run, None
        if run is not None:
            run.done = True  # it sends nothing more
            run.deleteLater()
        self._progress.end()

    def _mark_read(self, user: Message) -> Message:
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

    def _make_run(self, user: Message, answer_id: str, max_prompt_tokens: int) -> MapReduceRun:
        worker = self._chat.engine()
        assert worker is not None  # send_run checked that the engine runs
        self._connect(worker)
        settings = self._settings()

        def request(prompt: str) -> GenerationRequest:
            return request_for((ChatTurn(role=Role.USER, text=prompt),), settings)

        concurrent = self.on_server  # a server batches concurrent requests itself
        run = MapReduceRun(
            user.text, user.attachments, self._store.blobs.path,
            "" if concurrent else settings.model_dir, max_prompt_tokens, request,
            worker.generate, answer_id, self._tasks, parent=self,
            run_job=worker.run_job if concurrent else None,
        )  # fmt: skip
        run.progressed.connect(self._progress.set_progress)
        self._run = run
        self._progress.begin()
        return run

    def _connect(self, worker: InferenceWorker) -> None:
        if worker is self._connected:
            return
        worker.chunk_received.connect(self._on_worker_chunk_received)
        worker.generation_finished.connect(self._on_worker_generation_finished)
        worker.generation_failed.connect(self._on_worker_generation_failed)
        worker.job_progressed.connect(self._on_worker_job_progressed)
        worker.job_finished.connect(self._on_worker_job_finished)
        worker.job_failed.connect(self._on_worker_generation_failed)
        self._connected = worker

    def _on_worker_chunk_received(self, request_id: str, text: str) -> None:
        if self._run is not None and self._run.owns(request_id):
            self._run.on_chunk(request_id, text)

    def _on_worker_generation_finished(self, request_id: str, result: GenerationResult) -> None:
        if self._run is not None and self._run.owns(request_id):
            self._run.on_finished(request_id, result)

    def _on_worker_job_progressed(self, job_id: str, data: object) -> None:
        if self._run is not None and self._run.owns(job_id):
            self._run.on_job_progressed(job_id, data)

    def _on_worker_job_finished(self, job_id: str, result: object) -> None:
        if self._run is not None and self._run.owns(job_id):
            self._run.on_job_finished(job_id, result)

    def _on_worker_generation_failed(self, request_id: str, message: str) -> None:
        if self._run is not None and self._run.owns(request_id):
            self._run.on_failed(request_id, message)
