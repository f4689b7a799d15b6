"""Answer beyond the context budget: ask chunk by chunk (map), then combine the notes (reduce).

One request at a time goes through the inference worker; the run is a small state machine fed
with the worker's signals by `ChunkedAnswers`. Planning (tokenising the documents) runs on
a pool thread. Every chunk's answer is kept, also when the user cancels or a step fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.conversation.pipeline import AnswerOutcome
from app.core.chunk_notes import chunked_answer_text
from app.core.chunking import (
    Chunk,
    PartialAnswer,
    map_prompt,
    plan_map,
    plan_reduce,
    reduce_prompt,
)
from app.core.documents import Document, DocumentSource, Section, load_document
from app.core.errors import ExpectedError
from app.core.messages import Attachment, AttachmentKind, StopReason, Timings
from app.inference.engine import (
    CancelToken,
    ConcurrentEngine,
    Engine,
    GenerationRequest,
    GenerationResult,
    JobEmit,
    JobFunction,
    ModelError,
)
from app.inference.token_counter import load_counter
from app.ui.tasks.pool import TaskPool

log = logging.getLogger(__name__)

#: Reduce rounds before the notes are combined in one step whatever their size.
MAX_REDUCE_ROUNDS = 4

Submit = Callable[[str, GenerationRequest], None]
RequestFor = Callable[[str], GenerationRequest]
#: Runs a job on the inference worker under an id (`InferenceWorker.run_job`).
RunJob = Callable[[str, JobFunction], None]


class PlanningError(ExpectedError):
    """The documents cannot be cut into chunks that fit one request."""


def documents_of(
    attachments: Sequence[Attachment], blob_path: Callable[[str], Path]
) -> list[Document]:
    """The documents to read chunk by chunk: DOCUMENT attachments and text files.

    Args:
        attachments: the message's attachments.
        blob_path: maps a blob's SHA-256 to its file.

    Returns:
        The documents, in order (unreadable blobs are left out, logged).
    """
    documents = []
    for attachment in attachments:
        if attachment.kind is AttachmentKind.DOCUMENT:
            document = load_document(attachment, blob_path)
            if document is not None:
                documents.append(document)
        elif attachment.kind is AttachmentKind.TEXT and attachment.sha256:
            try:
                text = blob_path(attachment.sha256).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("text attachment %s unreadable: %s", attachment.name, exc)
                continue
            # A text file is a one-file "folder": its sections are what chunking reads.
            section = Section(attachment.name, text)
            documents.append(Document(attachment.name, DocumentSource.FOLDER, (section,)))
    return documents


class MapReduceRun(QObject):
    """One chunk-by-chunk answer, from planning to the combined answer.

    Args:
        question: the user's question.
        attachments: the message's attachments (documents and text files are read).
        blob_path: maps a blob's SHA-256 to its file.
        model_dir: the model folder (its tokenizer cuts the chunks; "" estimates).
        max_prompt_tokens: the most a single request's prompt may hold.
        request_for: makes the request for one prompt (sampling settings, answer length).
        submit: sends a request to the worker under a request id.
        request_prefix: request ids start with it (the assistant message's id).
        tasks: the pool planning runs on.
        run_job: when the engine is a server, runs every map step as one job of concurrent
            requests (the server batches them); None sends them one after the other.
    """

    #: (done, total, label): map steps done of all, and what the current one reads.
    progressed = Signal(int, int, str)
    #: str: text for the answer's bubble while it runs (each chunk's answer as it comes).
    text_streamed = Signal(str)
    #: AnswerOutcome: the run ended (finished, cancelled or failed).
    finished = Signal(object)

    def __init__(
        self,
        question: str,
        attachments: Sequence[Attachment],
        blob_path: Callable[[str], Path],
        model_dir: str,
        max_prompt_tokens: int,
        request_for: RequestFor,
        submit: Submit,
        request_prefix: str,
        tasks: TaskPool,
        parent: QObject | None = None,
        *,
        run_job: RunJob | None = None,
    ) -> None:
        super().__init__(parent)
        self._question = question
        self._attachments = list(attachments)
        self._blob_path = blob_path
        self._model_dir = model_dir
        self._max_prompt = max_prompt_tokens
        self._request_for = request_for
        self._submit = submit
        self._prefix = request_prefix
        self._tasks = tasks
        self._run_job = run_job
        self._mapped: dict[int, PartialAnswer] = {}  # concurrent map answers, by chunk
        self._count: Callable[[str], int] = len
        self.chunks: list[Chunk] = []
        self.notes: list[PartialAnswer] = []
        self._step = 0  # the next map step (0-based)
        self._round = 0
        self._groups: list[list[PartialAnswer]] = []
        self._reduced: list[PartialAnswer] = []
        self._current: str | None = None  # the request id in flight
        self._parts: list[str] = []  # its text so far
        self._final = False
        self._cancelled = False
        self.done = False
        self.requests_sent = 0

    # -- driving -----------------------------------------------------------------------------

    def start(self) -> None:
        """Plan the chunks on the pool, then send the first map request."""
        question, attachments, blob_path = self._question, self._attachments, self._blob_path
        model_dir, budget = self._model_dir, self._max_prompt

        def plan() -> tuple[list[Chunk], Callable[[str], int]]:
            counter = load_counter(model_dir)
            documents = documents_of(attachments, blob_path)
            try:
                chunks = plan_map(question, documents, budget, counter.count)
            except ValueError as exc:
                raise PlanningError(
                    "the question leaves no room for document text in one request; shorten it "
                    "or lower the answer length in Settings"
                ) from exc
            return chunks, counter.count

        self.progressed.emit(0, 0, "cutting the documents into chunks…")
        self._tasks.run(plan, self._on_planned, self._on_plan_failed)

    def owns(self, request_id: str) -> bool:
        """Whether a worker signal is about this run."""
        return request_id.startswith(self._prefix + ":")

    def cancel(self) -> None:
        """Stop after the step in flight (the caller cancels that one on the worker)."""
        self._cancelled = True
        if self._current is None and not self.done:
            self._end(StopReason.CANCELLED)

    def on_chunk(self, request_id: str, text: str) -> None:
        """A piece of the answer in flight."""
        if request_id == self._current:
            self._parts.append(text)
            self.text_streamed.emit(text)

    def on_finished(self, request_id: str, result: GenerationResult) -> None:
        """The request in flight ended."""
        if request_id != self._current:
            return
        self._current = None
        text = "".join(self._parts)
        self.text_streamed.emit("\n\n")
        if self._final:
            reason = StopReason.CANCELLED if self._cancelled else result.stop_reason
            self._end(reason, answer=text, timings=result.timings)
            return
        if request_id.split(":")[1] == "map":
            label = self.chunks[self._step].label
            stopped = result.stop_reason is StopReason.CANCELLED
            self.notes.append(PartialAnswer(label, text + (" *(stopped)*" if stopped else "")))
            self._step += 1
            self.progressed.emit(self._step, len(self.chunks), label)
        else:
            group = self._groups[len(self._reduced)]
            self._reduced.append(PartialAnswer(_group_label(group), text))
        if self._cancelled or result.stop_reason is StopReason.CANCELLED:
            self._end(StopReason.CANCELLED, timings=result.timings)
        else:
            self._next()

    def on_job_progressed(self, job_id: str, data: object) -> None:
        """One map step of the concurrent job answered: (chunk index, text, result)."""
        if job_id != self._current or not isinstance(data, tuple):
            return
        index, text, result = data
        chunk = self.chunks[index]
        stopped = result.stop_reason is StopReason.CANCELLED
        self._mapped[index] = PartialAnswer(chunk.label, text + (" *(stopped)*" if stopped else ""))
        self.progressed.emit(len(self._mapped), len(self.chunks), chunk.label)
        self.text_streamed.emit(f"▸ Chunk {chunk.index} of {chunk.total} — {chunk.label}\n")
        self.text_streamed.emit(text + "\n\n")

    def on_job_finished(self, job_id: str, _result: object) -> None:
        """Every map step of the concurrent job ended: reduce, in chunk order."""
        if job_id != self._current:
            return
        self._current = None
        self.notes = [self._mapped[i] for i in sorted(self._mapped)]
        self._step = len(self.chunks)
        if self._cancelled or len(self._mapped) < len(self.chunks):
            self._end(StopReason.CANCELLED)
        else:
            self._next()

    def on_failed(self, request_id: str, message: str) -> None:
        """The request in flight failed: keep the notes, end with the error."""
        if request_id == self._current:
            self._current = None
            self._end(StopReason.ERROR, error=message)

    # -- steps -------------------------------------------------------------------------------

    def _on_planned(self, planned: tuple[list[Chunk], Callable[[str], int]]) -> None:
        if self.done:
            return
        self.chunks, self._count = planned
        if not self.chunks:
            self._end(StopReason.ERROR, error="The attached documents hold no text to read.")
        elif self._cancelled:
            self._end(StopReason.CANCELLED)
        else:
            self._next()

    def _on_plan_failed(self, sentence: str) -> None:
        if not self.done:
            self._end(
                StopReason.ERROR, error=f"The documents could not be cut into chunks: {sentence}"
            )

    def _next(self) -> None:
        if self._step == 0 and self._run_job is not None and len(self.chunks) > 1:
            self._send_maps_together()
            return
        if self._step < len(self.chunks):
            chunk = self.chunks[self._step]
            self.progressed.emit(self._step, len(self.chunks), chunk.label)
            header = f"▸ Chunk {chunk.index} of {chunk.total} — {chunk.label}\n"
            self._send(f"map:{self._step}", map_prompt(self._question, chunk), header)
            return
        if self._groups and len(self._reduced) < len(self._groups):
            self._send_reduce()
            return
        pending = self._reduced or self.notes
        groups = plan_reduce(self._question, pending, self._max_prompt, self._count)
        self._round += 1
        if len(groups) <= 1 or self._round > MAX_REDUCE_ROUNDS:
            useful = [a for g in groups for a in g]
            self._final = True
            self.progressed.emit(len(self.chunks), len(self.chunks), "combining the notes")
            self._send(f"final:{self._round}", reduce_prompt(self._question, useful),
                       "▸ Combined answer\n")  # fmt: skip
            return
        self._groups, self._reduced = groups, []
        self._send_reduce()

    def _send_maps_together(self) -> None:
        """Every map step as one worker job of concurrent requests (a server batches them)."""
        assert self._run_job is not None
        requests = [self._request_for(map_prompt(self._question, c)) for c in self.chunks]
        self._current = f"{self._prefix}:maps"
        self.requests_sent += len(requests)
        self.progressed.emit(0, len(self.chunks), f"all {len(self.chunks)} chunks at once")

        def job(engine: Engine, cancel: CancelToken, emit: JobEmit) -> None:
            if not isinstance(engine, ConcurrentEngine):  # a local one answers one at a time
                raise ModelError("Only a server answers the chunks concurrently.")
            for answered in engine.generate_concurrent(requests, cancel):
                emit(answered)

        self._run_job(self._current, job)

    def _send_reduce(self) -> None:
        index = len(self._reduced)
        group = self._groups[index]
        label = f"combining, round {self._round}: part {index + 1} of {len(self._groups)}"
        self.progressed.emit(len(self.chunks), len(self.chunks), label)
        prompt = reduce_prompt(self._question, group)
        self._send(f"reduce:{self._round}:{index}", prompt, f"▸ Combining: {label}\n")

    def _send(self, step: str, prompt: str, header: str) -> None:
        self._current = f"{self._prefix}:{step}"
        self._parts = []
        self.requests_sent += 1
        # Sent before the header is shown, so a Cancel pressed at the header reaches it.
        self._submit(self._current, self._request_for(prompt))
        self.text_streamed.emit(header)

    def _end(
        self,
        reason: StopReason,
        *,
        answer: str = "",
        error: str = "",
        timings: Timings | None = None,
    ) -> None:
        if self.done:
            return
        self.done = True
        total = len(self.chunks)
        stopped = ""
        kept = f"after {len(self.notes)} of {total} chunks; the notes so far are kept below."
        if reason is StopReason.CANCELLED:
            stopped = f"Stopped {kept}"
        elif reason is StopReason.ERROR:
            stopped = f"Failed {kept}"
        text = chunked_answer_text(answer, self.notes, total, stopped=stopped)
        self.finished.emit(AnswerOutcome(text, reason, error, timings))


def _group_label(group: Sequence[PartialAnswer]) -> str:
    if not group:
        return "nothing relevant"
    if len(group) == 1:
        return group[0].label
    return f"{group[0].label} … {group[-1].label}"
